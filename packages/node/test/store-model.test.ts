/**
 * A fast-check model test of the chunk store (STYLE.md section 7): random sequences of
 * addContent, putChunk, readChunk, remove, on-disk corruption and close-and-reopen, run against
 * a real store (real SQLite, real files) and against a small in-memory model of what it must
 * hold. The model knows the rules: one file per hash (the contents share blocks), LRU eviction
 * of files no pinned content uses, StoreFullError when pinned files leave no room, a corrupt
 * file dropped with every chunk that used it at its first read. After every step the store
 * must agree with the model on the contents listed, the indices held, the bytes stored (never
 * over budget), the chunks reported dropped, and every byte read; at the end, on the chunk
 * files on disk. fast-check prints the seed and the shrunk sequence on failure.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { toHex } from '@peapod/core';
import { ChunkStore } from '../src/store/chunk-store.js';
import type { StoreFullError } from '../src/store/store-api.js';
import { CHUNK_BYTES, makeContent } from './support/store-fixtures.js';

/** Three contents over five blocks: chunk 1 of content 0 and chunk 0 of content 1 share a file, and so on. */
const CONTENTS = [
  makeContent(3, [0, 1, 2]),
  makeContent(3, [1, 3]),
  makeContent(3, [4, 4, 0], 1000),
];

type Op =
  | { kind: 'add'; content: number; pinned: boolean }
  | { kind: 'put'; content: number; index: number }
  | { kind: 'read'; content: number; index: number }
  | { kind: 'remove'; content: number }
  | { kind: 'corrupt'; content: number; index: number }
  | { kind: 'reopen' };

const chunkOf = fc.integer({ min: 0, max: CONTENTS.length - 1 }).chain((content) =>
  fc.record({
    content: fc.constant(content),
    index: fc.integer({ min: 0, max: CONTENTS[content]!.chunks.length - 1 }),
  }),
);
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      content: fc.nat(2),
      pinned: fc.boolean(),
    }),
  },
  { weight: 6, arbitrary: chunkOf.map((c) => ({ kind: 'put' as const, ...c })) },
  { weight: 4, arbitrary: chunkOf.map((c) => ({ kind: 'read' as const, ...c })) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), content: fc.nat(2) }) },
  { weight: 1, arbitrary: chunkOf.map((c) => ({ kind: 'corrupt' as const, ...c })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

/** The reference model: plain maps, the store's rules written the obvious way. */
class Model {
  readonly pinned = new Map<number, boolean>();
  readonly held = new Map<number, Set<number>>();
  readonly files = new Map<string, { sizeBytes: number; lastUse: number; corrupt: boolean }>();
  private clock = 0;
  dropped: string[] = [];

  constructor(readonly budgetBytes: number) {}

  hashOf(content: number, index: number): string {
    return toHex(CONTENTS[content]!.manifest.chunkHashes[index]!);
  }

  storedBytes(): number {
    return [...this.files.values()].reduce((sum, file) => sum + file.sizeBytes, 0);
  }

  private users(hash: string): Array<[number, number]> {
    const found: Array<[number, number]> = [];
    for (const [content, indices] of this.held) {
      for (const index of indices)
        if (this.hashOf(content, index) === hash) found.push([content, index]);
    }
    return found;
  }

  private touch(hash: string): void {
    this.files.get(hash)!.lastUse = ++this.clock;
  }

  private dropFile(hash: string): void {
    for (const [content, index] of this.users(hash)) {
      this.held.get(content)!.delete(index);
      this.dropped.push(`${content}:${index}`);
    }
    this.files.delete(hash);
  }

  add(content: number, pinned: boolean): void {
    this.pinned.set(content, pinned);
    if (!this.held.has(content)) this.held.set(content, new Set());
  }

  /** 'ok', or 'full' for StoreFullError, or 'unknown' for a content never added. */
  put(content: number, index: number): 'ok' | 'full' | 'unknown' {
    const indices = this.held.get(content);
    if (indices === undefined) return 'unknown';
    const hash = this.hashOf(content, index);
    if (indices.has(index) || this.files.has(hash)) {
      indices.add(index);
      this.touch(hash);
      return 'ok';
    }
    const sizeBytes = CONTENTS[content]!.chunks[index]!.length;
    const over = this.storedBytes() + sizeBytes - this.budgetBytes;
    if (over > 0) {
      const isPinned = (h: string): boolean =>
        this.users(h).some(([c]) => this.pinned.get(c) === true);
      const pinnedBytes = [...this.files]
        .filter(([h]) => isPinned(h))
        .reduce((sum, [, f]) => sum + f.sizeBytes, 0);
      if (pinnedBytes + sizeBytes > this.budgetBytes) return 'full';
      const victims = [...this.files]
        .filter(([h]) => !isPinned(h))
        .sort(([, a], [, b]) => a.lastUse - b.lastUse);
      let freed = 0;
      for (const [h, file] of victims) {
        if (freed >= over) break;
        freed += file.sizeBytes;
        this.dropFile(h);
      }
    }
    this.files.set(hash, { sizeBytes, lastUse: ++this.clock, corrupt: false });
    indices.add(index);
    return 'ok';
  }

  /** Whether the read returns the bytes. */
  read(content: number, index: number): boolean {
    if (this.held.get(content)?.has(index) !== true) return false;
    const hash = this.hashOf(content, index);
    if (this.files.get(hash)!.corrupt) {
      this.dropFile(hash);
      return false;
    }
    this.touch(hash);
    return true;
  }

  remove(content: number): boolean {
    const indices = this.held.get(content);
    if (indices === undefined) return false;
    for (const index of indices) this.dropped.push(`${content}:${index}`);
    const hashes = [...indices].map((index) => this.hashOf(content, index));
    this.held.delete(content);
    this.pinned.delete(content);
    for (const hash of hashes) if (this.users(hash).length === 0) this.files.delete(hash);
    return true;
  }
}

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-store-model-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let serial = 0;
async function runSequence(budgetChunks: number, ops: readonly Op[]): Promise<void> {
  const dir = join(root, `model-${serial++}`);
  const budgetBytes = budgetChunks * CHUNK_BYTES + 1000;
  const model = new Model(budgetBytes);
  const reported: string[] = [];
  const hexToContent = new Map(CONTENTS.map((content, c) => [content.hex, c]));
  const open = (): Promise<ChunkStore> =>
    ChunkStore.open({
      dir,
      budgetBytes,
      onChunksDropped: (contentId, indices) => {
        for (const index of indices)
          reported.push(`${hexToContent.get(toHex(contentId))}:${index}`);
      },
    });
  let store = await open();
  try {
    for (const [step, op] of ops.entries()) {
      const where = `step ${step} ${JSON.stringify(op)}`;
      switch (op.kind) {
        case 'add':
          store.addContent(
            CONTENTS[op.content]!.manifest,
            { kind: 'fetched' },
            { pinned: op.pinned },
          );
          model.add(op.content, op.pinned);
          break;
        case 'put': {
          const content = CONTENTS[op.content]!;
          const expected = model.put(op.content, op.index);
          const outcome = await store
            .putChunk(content.manifest.contentId, op.index, content.chunks[op.index]!)
            .then(
              () => 'ok',
              (error: Error) => {
                if ((error as StoreFullError).code === 'PEAPOD_ERR_STORE_FULL') return 'full';
                if ((error as { code?: string }).code === 'PEAPOD_ERR_INVALID_ARGUMENT')
                  return 'unknown';
                throw error;
              },
            );
          assert.equal(outcome, expected, where);
          break;
        }
        case 'read': {
          const content = CONTENTS[op.content]!;
          const bytes = await store.readChunk(content.manifest.contentId, op.index);
          assert.equal(bytes !== undefined, model.read(op.content, op.index), where);
          if (bytes !== undefined)
            assert.ok(Buffer.from(bytes).equals(content.chunks[op.index]!), where);
          break;
        }
        case 'remove':
          assert.equal(
            await store.remove(CONTENTS[op.content]!.manifest.contentId),
            model.remove(op.content),
            where,
          );
          break;
        case 'corrupt': {
          if (model.held.get(op.content)?.has(op.index) !== true) break;
          const hash = model.hashOf(op.content, op.index);
          const path = join(dir, 'chunks', hash.slice(0, 2), hash);
          const bytes = await readFile(path);
          bytes[step % bytes.length] = bytes[step % bytes.length]! ^ 0x40;
          await writeFile(path, bytes);
          model.files.get(hash)!.corrupt = true;
          break;
        }
        case 'reopen':
          store.close();
          store = await open();
          assert.deepEqual(
            store.recovery,
            { temporaryFilesRemoved: 0, orphanFilesRemoved: 0, rowsDropped: 0 },
            where,
          );
          break;
      }
      assert.deepEqual(reported.sort(), model.dropped.sort(), `${where}: chunks reported dropped`);
      reported.length = 0;
      model.dropped = [];
      assert.deepEqual(
        store
          .list()
          .map((row) => hexToContent.get(row.contentId))
          .sort(),
        [...model.held.keys()].sort(),
        `${where}: contents listed`,
      );
      for (const [c, indices] of model.held) {
        assert.deepEqual(
          store.heldIndices(CONTENTS[c]!.manifest.contentId),
          [...indices].sort((a, b) => a - b),
          `${where}: held of ${c}`,
        );
      }
      assert.equal(store.usage().storedBytes, model.storedBytes(), `${where}: stored bytes`);
      assert.ok(model.storedBytes() <= budgetBytes, `${where}: over budget`);
    }
    const onDisk: string[] = [];
    for (const sub of await readdir(join(dir, 'chunks')))
      onDisk.push(...(await readdir(join(dir, 'chunks', sub))));
    assert.deepEqual(onDisk.sort(), [...model.files.keys()].sort(), 'chunk files on disk');
  } finally {
    store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('random operations: the store holds what the model holds, within the budget, and serves only exact bytes', async () => {
  // Most sequences start with the three contents added (pins drawn), so their puts do work.
  const sequence = fc
    .tuple(
      fc.boolean(),
      fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      fc.array(opArbitrary, { minLength: 10, maxLength: 50 }),
    )
    .map(([addFirst, pins, ops]): Op[] => [
      ...(addFirst
        ? pins.map((pinned, content) => ({ kind: 'add' as const, content, pinned }))
        : []),
      ...ops,
    ]);
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 5 }), sequence, runSequence), {
    numRuns: 80,
  });
});
