/**
 * Content downloads of a chunk selection (`DownloadSource.chunks`, `peapod fetch --only`)
 * between real Cores (mesh harness): exactly the chosen chunks arrive, at their content
 * offsets, byte-exact, and the totals count the selected bytes; random selections against a
 * model; the host's ranges and stall timeout are checked (host misuse throws); the mapping of
 * pieces to chunks against a model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toHex } from '../src/bytes.js';
import { Core } from '../src/core.js';
import type { Manifest } from '../src/content/manifest.js';
import { ChunkSelection } from '../src/transfer/chunk-selection.js';
import type { IndexRange } from '../src/wire/messages.js';
import { Mesh } from './support/mesh.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';
import { requestedHashes, tapSent } from './support/sent-messages.js';

/** Merged byte runs [offset, end) of what a node was given for a download, in output order. */
function deliveredRuns(mesh: Mesh, node: number, downloadId: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (const piece of mesh.nodes[node]!.delivered.get(downloadId) ?? []) {
    assert.equal(piece.repair, false);
    const last = runs[runs.length - 1];
    const end = piece.offset + piece.bytes.length;
    if (last !== undefined && last[1] === piece.offset) last[1] = end;
    else runs.push([piece.offset, end]);
  }
  return runs;
}

/** The model: the selected chunks' byte runs, merged. */
function modelRuns(ranges: readonly IndexRange[], totalBytes: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (const { start, end } of ranges) {
    const from = start * CHUNK;
    const to = Math.min(totalBytes, end * CHUNK);
    const last = runs[runs.length - 1];
    if (last !== undefined && last[1] === from) last[1] = to;
    else runs.push([from, to]);
  }
  return runs;
}

/** Runs a selected download of `data` from one seeding peer; returns the requester's sends. */
function runSelection(
  data: Uint8Array,
  ranges: readonly IndexRange[],
): { mesh: Mesh; manifest: Manifest; requested: string[] } {
  const manifest = manifestOf(data);
  const mesh = new Mesh([{}, {}]);
  mesh.connect(0, 1);
  const sent = tapSent(mesh, 0, 1);
  mesh.drive();
  mesh.seedContent(1, manifest, data);
  mesh.input(0, {
    type: 'start-download',
    nowMs: mesh.nowMs,
    downloadId: 1,
    source: { kind: 'content', contentId: manifest.contentId, manifest, chunks: ranges },
  });
  mesh.runUntil(
    () =>
      mesh.eventsOf(0, 'download:complete').length > 0 ||
      mesh.eventsOf(0, 'download:failed').length > 0,
    60_000,
  );
  return { mesh, manifest, requested: requestedHashes(sent) };
}

/** Checks a finished selected download against the model. */
function checkSelection(data: Uint8Array, ranges: readonly IndexRange[]): void {
  const { mesh, manifest, requested } = runSelection(data, ranges);
  const runs = modelRuns(ranges, data.length);
  const selectedBytes = runs.reduce((sum, [from, to]) => sum + to - from, 0);
  const [done] = mesh.eventsOf(0, 'download:complete');
  assert.ok(done, 'the download completed');
  assert.equal(done.totalBytes, selectedBytes);
  assert.deepEqual(deliveredRuns(mesh, 0, 1), runs);
  for (const piece of mesh.nodes[0]!.delivered.get(1) ?? []) {
    assert.deepEqual(piece.bytes, data.subarray(piece.offset, piece.offset + piece.bytes.length));
  }
  const progress = mesh.eventsOf(0, 'download:progress');
  assert.ok(progress.every((e) => e.totalBytes === selectedBytes));
  if (selectedBytes > 0) assert.equal(progress[progress.length - 1]!.verifiedBytes, selectedBytes);
  // Only the selected chunks were asked for, each once.
  const wanted = ranges.flatMap(({ start, end }) =>
    Array.from({ length: end - start }, (_, i) => toHex(manifest.chunkHashes[start + i]!)),
  );
  assert.deepEqual([...requested].sort(), [...wanted].sort());
  // And stored: this device serves what it fetched.
  const stored = mesh.nodes[0]!.store.get(toHex(manifest.contentId));
  assert.equal(stored?.size ?? 0, wanted.length);
}

test('a selection delivers exactly the chosen chunks at their content offsets', () => {
  // 10 chunks, the last one short; chunks 1-2, 5 and the last one.
  const data = testBytes(9 * CHUNK + 777, 5);
  checkSelection(data, [
    { start: 1, end: 3 },
    { start: 5, end: 6 },
    { start: 9, end: 10 },
  ]);
});

test('a selection of no chunk completes at once with nothing delivered', () => {
  const data = testBytes(3 * CHUNK, 6);
  const { mesh, requested } = runSelection(data, []);
  assert.equal(mesh.eventsOf(0, 'download:complete')[0]?.totalBytes, 0);
  assert.equal(mesh.nodes[0]!.delivered.get(1), undefined);
  assert.deepEqual(requested, []);
});

/** Sorted, disjoint ranges of `count` chunks: per chunk, selected or not, and split or not. */
const selectionArb = (count: number): fc.Arbitrary<IndexRange[]> =>
  fc
    .array(fc.record({ on: fc.boolean(), split: fc.boolean() }), {
      minLength: count,
      maxLength: count,
    })
    .map((flags) => {
      const ranges: IndexRange[] = [];
      flags.forEach(({ on, split }, index) => {
        if (!on) return;
        const last = ranges[ranges.length - 1];
        if (last !== undefined && last.end === index && !split) {
          ranges[ranges.length - 1] = { start: last.start, end: index + 1 };
        } else {
          ranges.push({ start: index, end: index + 1 });
        }
      });
      return ranges;
    });

test('property: random selections deliver what the model says, byte-exact', () => {
  fc.assert(
    fc.property(
      fc
        .record({ count: fc.integer({ min: 1, max: 9 }), tail: fc.integer({ min: 1, max: CHUNK }) })
        .chain(({ count, tail }) =>
          fc.record({
            count: fc.constant(count),
            tail: fc.constant(tail),
            ranges: selectionArb(count),
          }),
        ),
      ({ count, tail, ranges }) => {
        checkSelection(testBytes((count - 1) * CHUNK + tail, count + tail), ranges);
      },
    ),
    { numRuns: 25 },
  );
});

function bareCore(): Core {
  const crypto = deterministicCrypto(3);
  return new Core({
    crypto,
    identity: crypto.ed25519GenerateKeyPair(),
    seed: 3,
    deviceName: 'host-misuse',
  });
}

/** The model of a valid selection of `count` chunks. */
function validSelection(ranges: ReadonlyArray<{ start: number; end: number }>, count: number) {
  let previousEnd = 0;
  for (const { start, end } of ranges) {
    if (start < previousEnd || start >= end || end > count || start < 0) return false;
    previousEnd = end;
  }
  return true;
}

test("property: the host's ranges are accepted exactly when sorted, disjoint and inside the content", () => {
  const data = testBytes(6 * CHUNK, 9);
  const manifest = manifestOf(data);
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ start: fc.integer({ min: -1, max: 7 }), end: fc.integer({ min: -1, max: 7 }) }),
        { maxLength: 5 },
      ),
      (ranges) => {
        const core = bareCore();
        const start = (): void =>
          core.handle({
            type: 'start-download',
            nowMs: 0,
            downloadId: 1,
            source: { kind: 'content', contentId: manifest.contentId, manifest, chunks: ranges },
          });
        if (validSelection(ranges, 6)) start();
        else
          assert.throws(start, { code: 'PEAPOD_ERR_INVALID_ARGUMENT', message: /source\.chunks/ });
      },
    ),
    { numRuns: 300 },
  );
});

test('host misuse: chunks without a manifest, malformed ranges, a bad stall timeout', () => {
  const data = testBytes(4 * CHUNK, 10);
  const manifest = manifestOf(data);
  const cases: Array<[string, Record<string, unknown>]> = [
    ['needs source.manifest', { manifest: undefined, chunks: [{ start: 0, end: 1 }] }],
    ['not an array', { chunks: 'all' }],
    ['not a {start, end} range', { chunks: [null] }],
    ['not an integer', { chunks: [{ start: 0.5, end: 1 }] }],
    ['stallTimeoutMs: 0 is not a positive integer', { stallTimeoutMs: 0 }],
    ['stallTimeoutMs: null is not a positive integer', { stallTimeoutMs: null }],
    ['stallTimeoutMs: 1.5 is not a positive integer', { stallTimeoutMs: 1.5 }],
  ];
  for (const [message, fields] of cases) {
    const source = { kind: 'content', contentId: manifest.contentId, manifest, ...fields };
    assert.throws(
      () =>
        bareCore().handle({
          type: 'start-download',
          nowMs: 0,
          downloadId: 1,
          source: source as never,
        }),
      {
        code: 'PEAPOD_ERR_INVALID_ARGUMENT',
        message: new RegExp(message.replace(/[.{}]/g, '\\$&')),
      },
    );
  }
});

test('property: pieces map to the selected chunks and back, and positions to content offsets', () => {
  fc.assert(
    fc.property(
      fc
        .record({
          count: fc.integer({ min: 1, max: 40 }),
          tail: fc.integer({ min: 1, max: CHUNK }),
        })
        .chain(({ count, tail }) =>
          fc.record({
            count: fc.constant(count),
            tail: fc.constant(tail),
            ranges: selectionArb(count),
          }),
        ),
      ({ count, tail, ranges }) => {
        const layout = { totalBytes: (count - 1) * CHUNK + tail, chunkSizeBytes: CHUNK };
        const selection = new ChunkSelection(layout, ranges);
        const chunks = ranges.flatMap(({ start, end }) =>
          Array.from({ length: end - start }, (_, i) => start + i),
        );
        assert.equal(selection.count, chunks.length);
        const size = (index: number): number =>
          Math.min(layout.totalBytes, (index + 1) * CHUNK) - index * CHUNK;
        assert.equal(
          selection.totalBytes,
          chunks.reduce((sum, index) => sum + size(index), 0),
        );
        chunks.forEach((index, piece) => {
          assert.equal(selection.chunkOf(piece), index);
          assert.equal(selection.pieceOf(index), piece);
          assert.equal(selection.contentOffset(selection.pieceStart(piece)), index * CHUNK);
          assert.equal(selection.pieceStart(piece + 1) - selection.pieceStart(piece), size(index));
        });
        for (let index = -1; index <= count; index++) {
          if (!chunks.includes(index)) assert.equal(selection.pieceOf(index), undefined);
        }
        const all = new ChunkSelection(layout, undefined);
        assert.equal(all.count, count);
        assert.equal(all.totalBytes, layout.totalBytes);
      },
    ),
    { numRuns: 300 },
  );
});

test('property: a stall timeout is accepted exactly when it is a positive integer', () => {
  const data = testBytes(2 * CHUNK, 12);
  const manifest = manifestOf(data);
  fc.assert(
    fc.property(
      fc.oneof(
        fc.integer({ min: -5, max: 100_000 }),
        fc.double({ noNaN: false }),
        fc.constantFrom(null, '1000', Number.MAX_SAFE_INTEGER + 1, Infinity),
      ),
      (stallTimeoutMs) => {
        const start = (): void =>
          bareCore().handle({
            type: 'start-download',
            nowMs: 0,
            downloadId: 1,
            source: {
              kind: 'content',
              contentId: manifest.contentId,
              manifest,
              stallTimeoutMs: stallTimeoutMs as number,
            },
          });
        if (Number.isSafeInteger(stallTimeoutMs) && (stallTimeoutMs as number) > 0) start();
        else
          assert.throws(start, { code: 'PEAPOD_ERR_INVALID_ARGUMENT', message: /stallTimeoutMs/ });
      },
    ),
    { numRuns: 200 },
  );
});
