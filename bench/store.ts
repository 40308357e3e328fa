/**
 * What the chunk store costs (packages/node/src/store): chunk puts and reads in MB/s beside the
 * raw file system doing the same bytes in the same run, on the same disk.
 *
 * Rows (each over the same `--chunks` random chunks of `--chunk-mib` MiB):
 * - `raw write + fdatasync`: open, write, fdatasync, close, one file per chunk: the floor;
 * - `chunk file protocol`: the store's file write alone (ChunkFiles.write: temporary name,
 *   fdatasync, rename, directory fsync), no index;
 * - `store putChunk`: the whole put (SHA-256 check, file protocol, SQLite commit in WAL mode),
 *   one at a time, then 4 in flight (as a download's verified chunks arrive);
 * - `SHA-256 alone`: node:crypto over the same bytes (what every verified read adds);
 * - `raw readFile` and `store readChunk` (read, SHA-256, use recorded), warm page cache: the
 *   files were just written, and dropping the caches would disturb everything else running on
 *   this machine.
 *
 * Usage: npx tsc -b && node bench/dist/store.js [--chunks 64] [--chunk-mib 4] [--dir DIR]
 *   (DIR defaults to a temporary directory; it is deleted afterwards.)
 *
 * Measured here (ext4 on a virtual disk, 2 cores shared with other work at load 8-9, so
 * writes vary 2x from run to run; three runs of 64 chunks of 4 MiB, MB/s):
 *   raw write + fdatasync          158 / 731 / 807
 *   chunk file protocol            142 / 375 / 535
 *   store putChunk, 1 in flight    141 / 390 / 234
 *   store putChunk, 4 in flight    175 / 311 / 219
 *   SHA-256 alone                 1068 / 1146 / 1140
 *   raw readFile (warm)           2388 / 2132 / 2323
 *   store readChunk (warm)         396 / 702 / 705
 * A put costs what the file protocol costs (the SQLite commit, WAL without fsync, is small
 * beside it); the protocol's rename and directory fsync cost up to half of raw write speed. A
 * verified read is read + SHA-256 (1 / (1/2300 + 1/1140) = 760 MB/s expected, 700 measured).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createManifest } from '@peapod/core';
import { createNodeCryptoProvider } from '@peapod/node';
import type * as ChunkStoreModule from '../packages/node/dist/src/store/chunk-store.js';
import type * as ChunkFilesModule from '../packages/node/dist/src/store/chunk-files.js';

// The store is not part of @peapod/node's public exports; load the built modules by path.
const storeModule = (await import(
  new URL('../../packages/node/dist/src/store/chunk-store.js', import.meta.url).href
)) as typeof ChunkStoreModule;
const filesModule = (await import(
  new URL('../../packages/node/dist/src/store/chunk-files.js', import.meta.url).href
)) as typeof ChunkFilesModule;

const { values } = parseArgs({
  options: {
    chunks: { type: 'string', default: '64' },
    'chunk-mib': { type: 'string', default: '4' },
    dir: { type: 'string' },
  },
});
const chunkCount = Number(values.chunks);
const chunkBytes = Number(values['chunk-mib']) * 2 ** 20;
const base = values.dir ?? (await mkdtemp(join(tmpdir(), 'peapod-bench-store-')));
await mkdir(base, { recursive: true });

const chunks = Array.from({ length: chunkCount }, () => new Uint8Array(randomBytes(chunkBytes)));
const crypto = createNodeCryptoProvider();
const manifest = createManifest(crypto, {
  totalBytes: chunkCount * chunkBytes,
  chunkSizeBytes: chunkBytes,
  chunkHashes: chunks.map((chunk) => crypto.sha256(chunk)),
});
const totalMB = (chunkCount * chunkBytes) / 1e6;

const rows: Array<[string, number]> = [];
async function measure(name: string, run: () => Promise<void>): Promise<void> {
  const start = performance.now();
  await run();
  const seconds = (performance.now() - start) / 1000;
  rows.push([name, totalMB / seconds]);
}

/** Runs `fn` over every chunk index, `parallel` at a time. */
async function eachChunk(parallel: number, fn: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < chunkCount) await fn(next++);
  };
  await Promise.all(Array.from({ length: parallel }, lane));
}

try {
  const rawDir = join(base, 'raw');
  await mkdir(rawDir);
  await measure('raw write + fdatasync', () =>
    eachChunk(1, async (index) => {
      const handle = await open(join(rawDir, String(index)), 'w');
      await handle.writeFile(chunks[index]!);
      await handle.datasync();
      await handle.close();
    }),
  );
  const files = new filesModule.ChunkFiles(join(base, 'protocol'));
  await files.prepare();
  await measure('chunk file protocol (tmp, fdatasync, rename, dir fsync)', () =>
    eachChunk(1, (index) =>
      files.write(Buffer.from(manifest.chunkHashes[index]!).toString('hex'), chunks[index]!),
    ),
  );

  const budgetBytes = 4 * chunkCount * chunkBytes;
  for (const parallel of [1, 4]) {
    const store = await storeModule.ChunkStore.open({
      dir: join(base, `store-${parallel}`),
      budgetBytes,
    });
    store.addContent(manifest, { kind: 'fetched' }, { pinned: false });
    await measure(`store putChunk, ${parallel} in flight`, () =>
      eachChunk(parallel, (index) => store.putChunk(manifest.contentId, index, chunks[index]!)),
    );
    if (parallel === 1) {
      await measure('SHA-256 alone', async () => {
        for (const chunk of chunks) createHash('sha256').update(chunk).digest();
      });
      await measure('raw readFile (warm cache)', () =>
        eachChunk(1, async (index) => {
          await readFile(join(rawDir, String(index)));
        }),
      );
      await measure('store readChunk (warm cache, verified)', () =>
        eachChunk(1, async (index) => {
          if ((await store.readChunk(manifest.contentId, index)) === undefined)
            throw new Error('lost a chunk');
        }),
      );
    }
    store.close();
  }
} finally {
  if (values.dir === undefined) await rm(base, { recursive: true, force: true });
}

console.log(
  `${chunkCount} chunks of ${chunkBytes / 2 ** 20} MiB (${totalMB.toFixed(0)} MB) in ${base}`,
);
for (const [name, mbPerSecond] of rows)
  console.log(`${name.padEnd(58)} ${mbPerSecond.toFixed(0).padStart(6)} MB/s`);
