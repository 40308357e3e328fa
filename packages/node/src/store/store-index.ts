/**
 * The store's index in SQLite (DESIGN.md decision 19): which contents the store knows, which of
 * their chunks it holds and where (a chunk file, or a range of a user's file), the chunk files
 * with their sizes and last use, and the URL mappings. Plain data in, plain data out: no file
 * is touched here, and the order of file and row changes is chunk-store.ts's.
 *
 * The tables are described in store-schema.ts; an older index is upgraded at open, in the
 * transaction that takes the lock (store-migrate.ts).
 *
 * Durability settings. WAL mode with `synchronous = NORMAL`: a commit is written to the WAL but
 * not fsynced, so a process crash (kill -9) loses nothing, and a power cut may roll back the
 * last commits while the database stays consistent. FULL would fsync the WAL on every commit,
 * a third fsync per stored chunk, and buys nothing here: every change the store makes is
 * ordered so that losing its commit leaves a state recovery repairs (a lost insert leaves a
 * fsynced file without a row: an orphan, deleted at open; a lost delete leaves a row whose file
 * may be gone: dropped at open, and every read is verified anyway).
 *
 * `locking_mode = EXCLUSIVE`: the connection takes the database's write lock at open and holds
 * it until close, so one process owns the store. That is what makes recovery's deletion of
 * temporary files safe (nobody else is writing one) and the in-memory byte count true. The busy
 * timeout is how long a second opener waits for the owner to close (a daemon restarting while
 * the old process still exits) before it is refused with a sentence.
 */
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ContentOrigin } from './store-api.js';
import { migrateSchema, StoreSchemaError } from './store-migrate.js';

const BUSY_TIMEOUT_MS = 2_000;

/** Where a held chunk's bytes are. */
export type ChunkLocation =
  | { readonly kind: 'file'; readonly hash: Uint8Array }
  | {
      readonly kind: 'reference';
      readonly hash: Uint8Array;
      readonly path: string;
      readonly offset: number;
    };

/** A `contents` row with its held-chunk count. */
export interface ContentRow {
  readonly contentId: Uint8Array;
  readonly manifestBytes: Uint8Array;
  readonly totalBytes: number;
  readonly chunkSizeBytes: number;
  readonly chunkCount: number;
  readonly pinned: boolean;
  readonly origin: ContentOrigin;
  readonly addedAtMs: number;
  readonly lastUsedAtMs: number;
  readonly heldChunks: number;
  /** Strangers are served it (`peapod share --publish`). */
  readonly published: boolean;
}

/** A chunk of a content that a change made the store stop holding. */
export interface DroppedChunk {
  readonly contentId: Uint8Array;
  readonly index: number;
}

/** A chunk file row and its size. */
export interface ChunkFileRow {
  readonly hash: Uint8Array;
  readonly sizeBytes: number;
}

/** A use of a chunk file, to be written in the next batch. */
export interface ChunkFileTouch {
  readonly hash: Uint8Array;
  readonly useSeq: number;
  readonly atMs: number;
}

interface RawContentRow {
  content_id: Buffer;
  manifest: Buffer;
  total_bytes: number;
  chunk_size_bytes: number;
  chunk_count: number;
  pinned: number;
  origin_kind: ContentOrigin['kind'];
  origin_path: string | null;
  origin_url: string | null;
  origin_validator: string | null;
  added_at_ms: number;
  last_used_at_ms: number;
  published: number;
  held: number;
}

interface RawLocation {
  hash: Buffer;
  file_hash: Buffer | null;
  reference_path: string | null;
  reference_offset: number | null;
}

function plain(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function originOf(row: RawContentRow): ContentOrigin {
  switch (row.origin_kind) {
    case 'shared':
      return { kind: 'shared', path: row.origin_path ?? '' };
    case 'url':
      return { kind: 'url', url: row.origin_url ?? '', validator: row.origin_validator ?? '' };
    default:
      return { kind: 'fetched' };
  }
}

function contentOf(row: RawContentRow): ContentRow {
  return {
    contentId: plain(row.content_id),
    manifestBytes: plain(row.manifest),
    totalBytes: row.total_bytes,
    chunkSizeBytes: row.chunk_size_bytes,
    chunkCount: row.chunk_count,
    pinned: row.pinned === 1,
    origin: originOf(row),
    addedAtMs: row.added_at_ms,
    lastUsedAtMs: row.last_used_at_ms,
    heldChunks: row.held,
    // Anything but 1 (the column's CHECK allows 0 and 1 only) is the safe side: not published.
    published: row.published === 1,
  };
}

const CONTENT_COLUMNS = `c.*, (SELECT COUNT(*) FROM content_chunks cc WHERE cc.content_id = c.content_id) AS held`;
const PINNED_USER = `EXISTS (SELECT 1 FROM content_chunks cc JOIN contents c ON c.content_id = cc.content_id
  WHERE cc.file_hash = f.hash AND c.pinned = 1)`;

/** The database could not be opened: another process owns it, or it is not a store index. */
export class StoreIndexOpenError extends Error {
  override readonly name = 'StoreIndexOpenError';
}

export class StoreIndex {
  private readonly statements;

  private constructor(private readonly db: Database.Database) {
    const prepare = (sql: string): Database.Statement => db.prepare(sql);
    this.statements = {
      content: prepare(`SELECT ${CONTENT_COLUMNS} FROM contents c WHERE content_id = ?`),
      contents: prepare(
        `SELECT ${CONTENT_COLUMNS} FROM contents c ORDER BY added_at_ms, content_id`,
      ),
      contentExists: prepare(`SELECT 1 FROM contents WHERE content_id = ?`).pluck(),
      upsertContent: prepare(`INSERT INTO contents (content_id, manifest, total_bytes,
          chunk_size_bytes, chunk_count, pinned, origin_kind, origin_path, origin_url,
          origin_validator, added_at_ms, last_used_at_ms)
        VALUES (@contentId, @manifest, @totalBytes, @chunkSizeBytes, @chunkCount, @pinned, @kind,
          @path, @url, @validator, @nowMs, @nowMs)
        ON CONFLICT (content_id) DO UPDATE SET pinned = excluded.pinned,
          origin_kind = excluded.origin_kind, origin_path = excluded.origin_path,
          origin_url = excluded.origin_url, origin_validator = excluded.origin_validator,
          last_used_at_ms = excluded.last_used_at_ms`),
      deleteContent: prepare(`DELETE FROM contents WHERE content_id = ?`),
      setPublished: prepare(`UPDATE contents SET published = ? WHERE content_id = ?`),
      touchContent: prepare(`UPDATE contents SET last_used_at_ms = ? WHERE content_id = ?`),
      location: prepare(`SELECT hash, file_hash, reference_path, reference_offset
        FROM content_chunks WHERE content_id = ? AND chunk_index = ?`),
      heldIndices: prepare(
        `SELECT chunk_index FROM content_chunks WHERE content_id = ? ORDER BY chunk_index`,
      ).pluck(),
      fileHashesOf: prepare(
        `SELECT DISTINCT file_hash FROM content_chunks WHERE content_id = ? AND file_hash IS NOT NULL`,
      ).pluck(),
      insertChunk: prepare(`INSERT OR REPLACE INTO content_chunks VALUES (?, ?, ?, ?, ?, ?)`),
      deleteChunk: prepare(`DELETE FROM content_chunks WHERE content_id = ? AND chunk_index = ?`),
      usersOfFile: prepare(
        `SELECT content_id, chunk_index FROM content_chunks WHERE file_hash = ?`,
      ),
      fileInUse: prepare(`SELECT 1 FROM content_chunks WHERE file_hash = ? LIMIT 1`).pluck(),
      deleteUsersOfFile: prepare(`DELETE FROM content_chunks WHERE file_hash = ?`),
      fileSize: prepare(`SELECT size_bytes FROM chunk_files WHERE hash = ?`).pluck(),
      insertFile: prepare(`INSERT INTO chunk_files VALUES (?, ?, ?, ?)`),
      deleteFile: prepare(`DELETE FROM chunk_files WHERE hash = ?`),
      touchFile: prepare(`UPDATE chunk_files SET last_used_at_ms = ?, use_seq = ? WHERE hash = ?`),
      fileSizes: prepare(`SELECT hash, size_bytes FROM chunk_files`),
      unusedFiles: prepare(`SELECT hash, size_bytes FROM chunk_files f
        WHERE NOT EXISTS (SELECT 1 FROM content_chunks cc WHERE cc.file_hash = f.hash)`),
      storedBytes: prepare(`SELECT COALESCE(SUM(size_bytes), 0) FROM chunk_files`).pluck(),
      evictable: prepare(`SELECT hash, size_bytes FROM chunk_files f WHERE NOT ${PINNED_USER}
        ORDER BY use_seq`),
      maxUseSeq: prepare(`SELECT COALESCE(MAX(use_seq), 0) FROM chunk_files`).pluck(),
      mapUrl: prepare(`INSERT OR REPLACE INTO url_mappings VALUES (?, ?, ?, ?)`),
      urlContents: prepare(`SELECT validator, content_id FROM url_mappings WHERE url = ?
        ORDER BY rowid DESC`),
      urlMappings: prepare(`SELECT url, validator, content_id FROM url_mappings ORDER BY rowid`),
    };
  }

  /**
   * Opens (creating if needed) the index at `path` and takes its lock.
   * @throws StoreIndexOpenError when another process holds the store, the file was written by
   * a newer schema version, or it is not a SQLite database.
   */
  static open(path: string): StoreIndex {
    const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      // The first write takes the exclusive lock (and creates or upgrades the schema).
      db.transaction(() => migrateSchema(db, path)).immediate();
    } catch (error) {
      db.close();
      if (error instanceof StoreSchemaError) throw new StoreIndexOpenError(error.message);
      const code = (error as { code?: unknown }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
        throw new StoreIndexOpenError(
          `The chunk store index ${path} is in use by another PeaPod process; stop that daemon, or give this one another data directory.`,
          { cause: error },
        );
      }
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
        throw new StoreIndexOpenError(
          `The chunk store index ${path} is damaged (${String(code)}); move the store directory aside (mv ${dirname(path)} ${dirname(path)}.broken) and restart: the store starts empty, so what you shared must be shared again (peapod share) and fetched contents are fetched again as needed.`,
          { cause: error },
        );
      }
      throw error;
    }
    return new StoreIndex(db);
  }

  close(): void {
    this.db.close();
  }

  /** Runs `fn` in one transaction (BEGIN IMMEDIATE; rolled back if it throws). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // Contents.

  content(contentId: Uint8Array): ContentRow | undefined {
    const row = this.statements.content.get(contentId) as RawContentRow | undefined;
    return row === undefined ? undefined : contentOf(row);
  }

  contents(): ContentRow[] {
    return (this.statements.contents.all() as RawContentRow[]).map(contentOf);
  }

  contentExists(contentId: Uint8Array): boolean {
    return this.statements.contentExists.get(contentId) !== undefined;
  }

  upsertContent(row: {
    contentId: Uint8Array;
    manifest: Uint8Array;
    totalBytes: number;
    chunkSizeBytes: number;
    chunkCount: number;
    pinned: boolean;
    origin: ContentOrigin;
    nowMs: number;
  }): void {
    const origin = row.origin;
    this.statements.upsertContent.run({
      contentId: row.contentId,
      manifest: row.manifest,
      totalBytes: row.totalBytes,
      chunkSizeBytes: row.chunkSizeBytes,
      chunkCount: row.chunkCount,
      pinned: row.pinned ? 1 : 0,
      kind: origin.kind,
      path: origin.kind === 'shared' ? origin.path : null,
      url: origin.kind === 'url' ? origin.url : null,
      validator: origin.kind === 'url' ? origin.validator : null,
      nowMs: row.nowMs,
    });
  }

  /** Records whether strangers are served the content; false when the index has no such row. */
  setPublished(contentId: Uint8Array, published: boolean): boolean {
    return this.statements.setPublished.run(published ? 1 : 0, contentId).changes === 1;
  }

  /**
   * Deletes a content with its chunk rows and URL mappings (call inside `transaction`).
   * Returns the chunk files no content uses any more (their rows deleted too).
   */
  deleteContent(contentId: Uint8Array): ChunkFileRow[] {
    const hashes = (this.statements.fileHashesOf.all(contentId) as Buffer[]).map(plain);
    this.statements.deleteContent.run(contentId);
    return hashes.flatMap((hash) => this.deleteFileIfUnused(hash));
  }

  // Chunks.

  location(contentId: Uint8Array, index: number): ChunkLocation | undefined {
    const row = this.statements.location.get(contentId, index) as RawLocation | undefined;
    if (row === undefined) return undefined;
    if (row.file_hash !== null) return { kind: 'file', hash: plain(row.hash) };
    return {
      kind: 'reference',
      hash: plain(row.hash),
      path: row.reference_path ?? '',
      offset: row.reference_offset ?? 0,
    };
  }

  heldIndices(contentId: Uint8Array): number[] {
    return this.statements.heldIndices.all(contentId) as number[];
  }

  /** The size of the chunk file `hash`, or undefined when the index has none. */
  chunkFileSize(hash: Uint8Array): number | undefined {
    return this.statements.fileSize.get(hash) as number | undefined;
  }

  /** Records a new chunk file (call inside `transaction`, with its first user). */
  insertChunkFile(hash: Uint8Array, sizeBytes: number, touch: ChunkFileTouch): void {
    this.statements.insertFile.run(hash, sizeBytes, touch.atMs, touch.useSeq);
  }

  /**
   * Records (content, index) as held in the chunk file `hash` or at a reference, replacing any
   * earlier location. Returns the chunk file the old location used if no one uses it now (its
   * row deleted; call inside `transaction`).
   */
  setLocation(contentId: Uint8Array, index: number, location: ChunkLocation): ChunkFileRow[] {
    const before = this.location(contentId, index);
    if (location.kind === 'file') {
      this.statements.insertChunk.run(contentId, index, location.hash, location.hash, null, null);
    } else {
      this.statements.insertChunk.run(
        contentId,
        index,
        location.hash,
        null,
        location.path,
        location.offset,
      );
    }
    if (before?.kind !== 'file') return [];
    if (location.kind === 'file' && Buffer.compare(before.hash, location.hash) === 0) return [];
    return this.deleteFileIfUnused(before.hash);
  }

  /** Stops holding (content, index) (a reference that failed its check). */
  deleteChunk(contentId: Uint8Array, index: number): ChunkFileRow[] {
    const before = this.location(contentId, index);
    this.statements.deleteChunk.run(contentId, index);
    return before?.kind === 'file' ? this.deleteFileIfUnused(before.hash) : [];
  }

  /**
   * Forgets the chunk file `hash` and every chunk held in it (call inside `transaction`).
   * Returns those chunks and the file's size (0 when the index had no such file).
   */
  dropChunkFile(hash: Uint8Array): { dropped: DroppedChunk[]; sizeBytes: number } {
    const sizeBytes = this.chunkFileSize(hash);
    if (sizeBytes === undefined) return { dropped: [], sizeBytes: 0 };
    const users = this.statements.usersOfFile.all(hash) as Array<{
      content_id: Buffer;
      chunk_index: number;
    }>;
    this.statements.deleteUsersOfFile.run(hash);
    this.statements.deleteFile.run(hash);
    return {
      dropped: users.map((user) => ({
        contentId: plain(user.content_id),
        index: user.chunk_index,
      })),
      sizeBytes,
    };
  }

  private deleteFileIfUnused(hash: Uint8Array): ChunkFileRow[] {
    if (this.statements.fileInUse.get(hash) !== undefined) return [];
    const sizeBytes = this.chunkFileSize(hash);
    if (sizeBytes === undefined) return [];
    this.statements.deleteFile.run(hash);
    return [{ hash, sizeBytes }];
  }

  // Budget and eviction.

  /** Bytes of all chunk files. */
  storedBytes(): number {
    return this.statements.storedBytes.get() as number;
  }

  /**
   * Least recently used chunk files no pinned content uses, until they add up to `bytes` (all
   * of them when they add up to less).
   */
  evictionCandidates(bytes: number): ChunkFileRow[] {
    const chosen: ChunkFileRow[] = [];
    let total = 0;
    for (const row of this.statements.evictable.iterate() as IterableIterator<{
      hash: Buffer;
      size_bytes: number;
    }>) {
      if (total >= bytes) break;
      chosen.push({ hash: plain(row.hash), sizeBytes: row.size_bytes });
      total += row.size_bytes;
    }
    return chosen;
  }

  maxUseSeq(): number {
    return this.statements.maxUseSeq.get() as number;
  }

  /** Writes a batch of uses (last used times, eviction order) in one transaction. */
  writeTouches(files: Iterable<ChunkFileTouch>, contents: Iterable<[Uint8Array, number]>): void {
    this.transaction(() => {
      for (const touch of files)
        this.statements.touchFile.run(touch.atMs, touch.useSeq, touch.hash);
      for (const [contentId, atMs] of contents) this.statements.touchContent.run(atMs, contentId);
    });
  }

  // Recovery.

  /** Every chunk file row: hash (hex) -> size. */
  chunkFileSizes(): Map<string, number> {
    const sizes = new Map<string, number>();
    for (const row of this.statements.fileSizes.iterate() as IterableIterator<{
      hash: Buffer;
      size_bytes: number;
    }>) {
      sizes.set(row.hash.toString('hex'), row.size_bytes);
    }
    return sizes;
  }

  /** Chunk file rows no chunk uses (none unless a bug left one). */
  unusedChunkFiles(): ChunkFileRow[] {
    return (this.statements.unusedFiles.all() as Array<{ hash: Buffer; size_bytes: number }>).map(
      (row) => ({ hash: plain(row.hash), sizeBytes: row.size_bytes }),
    );
  }

  // URL mappings.

  mapUrl(url: string, validator: string, contentId: Uint8Array, nowMs: number): void {
    this.statements.mapUrl.run(url, validator, contentId, nowMs);
  }

  urlContents(url: string): Array<{ validator: string; contentId: Uint8Array }> {
    return (
      this.statements.urlContents.all(url) as Array<{ validator: string; content_id: Buffer }>
    ).map((row) => ({ validator: row.validator, contentId: plain(row.content_id) }));
  }

  urlMappings(): Array<{ url: string; validator: string; contentId: Uint8Array }> {
    return (
      this.statements.urlMappings.all() as Array<{
        url: string;
        validator: string;
        content_id: Buffer;
      }>
    ).map((row) => ({ url: row.url, validator: row.validator, contentId: plain(row.content_id) }));
  }
}
