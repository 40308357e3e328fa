/**
 * The crash test (issue 11 item 1): a child process writes chunks as fast as it can
 * (support/store-crash-writer.ts: four puts in flight, evictions, removals), is killed with
 * SIGKILL after a number of progress lines drawn from a seeded PRNG, and the store is reopened.
 * After every kill:
 * - the index agrees with the files: every chunk file row's file exists with its size, and no
 *   orphan or temporary file is left (checked on disk and in the index's own tables, and a
 *   second open finds nothing to recover);
 * - no index row lost its file (recovery dropped no row: a kill loses no commit);
 * - every held chunk reads back byte-exact (compared with the deterministic generator) and no
 *   read finds a corrupt copy;
 * - every pinned put the writer reported is still held, every content it reported added is
 *   listed, every content it reported removed is gone or was re-added after that removal (the
 *   writer may be a step or two past the line the kill was aimed at);
 * - the chunk files fit the budget.
 * CRASH_RUNS kills (default 50; `STORE_CRASH_RUNS` overrides), two writers at a time.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { Prng, toHex } from '@peapod/core';
import { ChunkStore } from '../src/store/chunk-store.js';
import { crashPlan, type CrashPlan } from './support/store-fixtures.js';

const CRASH_RUNS = Number(process.env['STORE_CRASH_RUNS'] ?? 50);
const PARALLEL = 2;
const MASTER_SEED = Number(process.env['STORE_CRASH_SEED'] ?? 0x5ea90d);
const WRITER = fileURLToPath(new URL('./support/store-crash-writer.js', import.meta.url));

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-store-crash-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** What the writer reported before it died. */
interface WriterLog {
  /** Per content: the last of add / removing / removed. */
  readonly lastEvent: Map<number, string>;
  /** Per content: the writer's round of its last reported removal. */
  readonly removedInRound: Map<number, number>;
  readonly pinnedPuts: Set<number>;
  lines: number;
}

/** Runs the writer until it printed `killAfterLines` lines, then SIGKILLs it. */
async function writeAndKill(dir: string, seed: number, killAfterLines: number): Promise<WriterLog> {
  const child = spawn(process.execPath, [WRITER, dir, String(seed)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  const log: WriterLog = {
    lastEvent: new Map(),
    removedInRound: new Map(),
    pinnedPuts: new Set(),
    lines: 0,
  };
  for await (const line of createInterface({ input: child.stdout })) {
    const [event, content, index] = line.split(' ');
    if (event === 'removed') log.removedInRound.set(Number(content), Number(index));
    if (event === 'put' && content === '0') log.pinnedPuts.add(Number(index));
    else if (event === 'add' || event === 'removing' || event === 'removed') {
      log.lastEvent.set(Number(content), event);
    }
    log.lines += 1;
    if (log.lines === killAfterLines) child.kill('SIGKILL');
  }
  const signal = await exited;
  assert.equal(signal, 'SIGKILL', `the writer ended before the kill (seed ${seed}): ${stderr}`);
  return log;
}

/** Every file under chunks/ (relative names), and the index's chunk file rows. */
async function filesAndRows(
  dir: string,
): Promise<{ files: Map<string, number>; rows: Map<string, number> }> {
  const files = new Map<string, number>();
  const chunks = join(dir, 'chunks');
  for (const sub of await readdir(chunks)) {
    for (const name of await readdir(join(chunks, sub))) {
      files.set(`${sub}/${name}`, (await stat(join(chunks, sub, name))).size);
    }
  }
  const db = new Database(join(dir, 'index.sqlite'), { readonly: true });
  const rows = new Map<string, number>();
  for (const row of db.prepare('SELECT hash, size_bytes FROM chunk_files').all() as Array<{
    hash: Buffer;
    size_bytes: number;
  }>) {
    const hex = row.hash.toString('hex');
    rows.set(`${hex.slice(0, 2)}/${hex}`, row.size_bytes);
  }
  const dangling = db
    .prepare(
      'SELECT COUNT(*) FROM content_chunks cc WHERE file_hash IS NOT NULL AND NOT EXISTS (SELECT 1 FROM chunk_files f WHERE f.hash = cc.file_hash)',
    )
    .pluck()
    .get();
  db.close();
  assert.equal(dangling, 0, 'a chunk row names a chunk file the index does not have');
  return { files, rows };
}

interface RunFigures {
  temporaryFilesRemoved: number;
  orphanFilesRemoved: number;
  rowsDropped: number;
  heldChunks: number;
}

async function crashOnce(
  run: number,
  plan: CrashPlan,
  seed: number,
  killAfterLines: number,
): Promise<RunFigures> {
  const dir = join(root, `run-${run}`);
  const log = await writeAndKill(dir, seed, killAfterLines);
  const context = `run ${run}, seed ${seed}, killed after ${killAfterLines} lines`;

  const dropped: string[] = [];
  const store = await ChunkStore.open({
    dir,
    budgetBytes: plan.budgetBytes,
    onChunksDropped: (contentId, indices) =>
      dropped.push(`${toHex(contentId)} ${indices.join(',')}`),
  });
  const { temporaryFilesRemoved, orphanFilesRemoved, rowsDropped } = store.recovery;
  // A kill (unlike a power cut) loses no commit, and a row is committed only after its file
  // is complete: so no row can have lost its file.
  assert.equal(rowsDropped, 0, `${context}: recovery dropped index rows whose file was missing`);
  let heldChunks = 0;
  try {
    const listed = new Map(store.list().map((row) => [row.contentId, row]));
    for (const [c, content] of plan.contents.entries()) {
      const row = listed.get(content.hex);
      const last = log.lastEvent.get(c);
      if (last === 'add') assert.ok(row, `${context}: content ${c} was added but is not listed`);
      if (last === 'removed' && row !== undefined) {
        // Listed again only as a re-add from that round or later, never as the removed row.
        const round = log.removedInRound.get(c)!;
        const reAddRound =
          row.origin.kind === 'url'
            ? Number(/^crash:\/\/re-added\/(\d+)$/.exec(row.origin.url)?.[1])
            : NaN;
        assert.ok(
          reAddRound >= round,
          `${context}: content ${c} was removed in round ${round} but its old row is listed`,
        );
      }
      if (row === undefined) continue;
      assert.deepEqual(store.manifest(content.manifest.contentId), content.manifest);
      for (const index of store.heldIndices(content.manifest.contentId)) {
        const bytes = await store.readChunk(content.manifest.contentId, index);
        assert.ok(bytes, `${context}: content ${c} chunk ${index} is held but does not read back`);
        assert.ok(
          Buffer.from(bytes).equals(content.chunks[index]!),
          `${context}: content ${c} chunk ${index} differs`,
        );
        heldChunks += 1;
      }
    }
    const pinnedHeld = new Set(store.heldIndices(plan.contents[0]!.manifest.contentId));
    for (const index of log.pinnedPuts) {
      assert.ok(pinnedHeld.has(index), `${context}: pinned chunk ${index} was stored but is lost`);
    }
    assert.deepEqual(dropped, [], `${context}: a read after recovery found a corrupt copy`);
    assert.ok(store.usage().storedBytes <= plan.budgetBytes, `${context}: over budget`);
  } finally {
    store.close();
  }

  const { files, rows } = await filesAndRows(dir);
  assert.deepEqual(
    files,
    rows,
    `${context}: the chunk files and the index disagree after recovery`,
  );
  const again = await ChunkStore.open({ dir, budgetBytes: plan.budgetBytes });
  again.close();
  assert.deepEqual(
    again.recovery,
    { temporaryFilesRemoved: 0, orphanFilesRemoved: 0, rowsDropped: 0 },
    `${context}: a second open still found something to recover`,
  );
  await rm(dir, { recursive: true, force: true });
  return { temporaryFilesRemoved, orphanFilesRemoved, rowsDropped, heldChunks };
}

test(`kill -9 during heavy writes, ${CRASH_RUNS} times: the reopened store agrees with its files and serves only exact bytes`, async () => {
  const prng = new Prng(MASTER_SEED);
  const runs = Array.from({ length: CRASH_RUNS }, (_, run) => ({
    run,
    seed: prng.nextU32(),
    killAfterLines: 8 + prng.nextInt(300),
  }));
  const figures: RunFigures[] = [];
  let next = 0;
  async function lane(): Promise<void> {
    while (next < runs.length) {
      const { run, seed, killAfterLines } = runs[next++]!;
      try {
        figures.push(await crashOnce(run, crashPlan(seed), seed, killAfterLines));
      } catch (error) {
        next = runs.length; // the other lane stops after its current run
        throw error;
      }
    }
  }
  // Every lane ends before the test does, so a failure in one does not leave the other's
  // writer running while `after` deletes the directory.
  const settled = await Promise.allSettled(Array.from({ length: PARALLEL }, lane));
  for (const result of settled) if (result.status === 'rejected') throw result.reason;
  const sum = (key: keyof RunFigures): number => figures.reduce((total, f) => total + f[key], 0);
  const leftovers = `${sum('temporaryFilesRemoved')} temporary and ${sum('orphanFilesRemoved')} orphan files removed, ${sum('rowsDropped')} rows dropped`;
  console.log(
    `store crash test: ${figures.length} SIGKILLs (master seed ${MASTER_SEED}); after each: index rows = files on disk, no temp or orphan file, a second open recovers nothing, ${sum('heldChunks')} held chunks read back byte-exact in all, pinned puts kept, adds and removes kept; recovery over all runs: ${leftovers}`,
  );
  assert.equal(figures.length, CRASH_RUNS);
});
