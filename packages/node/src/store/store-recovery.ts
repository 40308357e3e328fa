/**
 * Crash recovery, run by `ChunkStore.open` before anything else touches the store (the index's
 * exclusive lock guarantees nobody else is writing). A crash can interrupt the store between
 * any two steps of a write (temporary file, fsync, rename, directory fsync, index commit) or of
 * a removal (index commit, unlink); each leftover has one repair:
 *
 * - a temporary file (`.tmp-*`): a write that never finished: deleted;
 * - a chunk file the index does not name, or whose size is not the size the index recorded, or
 *   a stray file in the chunk directories: deleted (orphans);
 * - an index row whose chunk file is missing or has the wrong size: the file row and every
 *   chunk row that used it are dropped;
 * - a chunk file row that no chunk uses (only a bug could leave one): dropped, its file deleted;
 * - a content row whose stored manifest does not decode to its content ID (a damaged index
 *   file, an edit by hand): the content, its chunk rows and URL mappings are dropped, and chunk
 *   files nothing else uses are deleted. Without this, listing the store at start-up would stop
 *   the daemon on one bad row.
 *
 * Index rows go first (one transaction), files after, so a crash during recovery leaves only
 * more orphans for the next open. Sizes are checked, bytes are not: every read verifies its
 * SHA-256, and a deep scan of a large store at every start would cost minutes.
 */
import type { ChunkFiles } from './chunk-files.js';
import type { RecoveryReport } from './store-api.js';
import type { StoreIndex } from './store-index.js';

/** Makes the index and the chunk files agree (see the module comment). */
export async function recoverStore(
  files: ChunkFiles,
  index: StoreIndex,
  /** Whether a content row's stored manifest decodes and hashes to its content ID. */
  manifestSound: (contentId: Uint8Array, manifestBytes: Uint8Array) => boolean,
): Promise<RecoveryReport> {
  const scan = await files.scan();
  const rows = index.chunkFileSizes();
  const orphanPaths = new Set(scan.strayPaths);
  for (const [hashHex, sizeBytes] of scan.chunkSizes) {
    if (rows.get(hashHex) !== sizeBytes) orphanPaths.add(files.pathOf(hashHex));
  }
  const missing = [...rows]
    .filter(([hashHex, sizeBytes]) => scan.chunkSizes.get(hashHex) !== sizeBytes)
    .map(([hashHex]) => Buffer.from(hashHex, 'hex'));

  let rowsDropped = 0;
  index.transaction(() => {
    for (const row of index.contents()) {
      if (manifestSound(row.contentId, row.manifestBytes)) continue;
      rowsDropped += 1;
      for (const file of index.deleteContent(row.contentId))
        orphanPaths.add(files.pathOf(Buffer.from(file.hash).toString('hex')));
    }
    for (const hash of missing) rowsDropped += 1 + index.dropChunkFile(hash).dropped.length;
    for (const unused of index.unusedChunkFiles()) {
      index.dropChunkFile(unused.hash);
      rowsDropped += 1;
      orphanPaths.add(files.pathOf(Buffer.from(unused.hash).toString('hex')));
    }
  });

  for (const path of scan.temporaryPaths) await files.removePath(path);
  for (const path of orphanPaths) await files.removePath(path);
  return {
    temporaryFilesRemoved: scan.temporaryPaths.length,
    orphanFilesRemoved: orphanPaths.size,
    rowsDropped,
  };
}
