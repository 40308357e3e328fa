/**
 * The store index's schema (store-index.ts opens it, store-migrate.ts creates or upgrades it).
 * A new database gets `SCHEMA` and a `schema_version` row; an index of an older version is
 * upgraded at open by the steps of `MIGRATIONS`, one version at a time; a newer one is refused.
 * So a change to these tables is a new version, its step here, and `SCHEMA` as the steps leave
 * it (a new column goes last, where `ALTER TABLE ADD COLUMN` puts it).
 *
 * Tables (schema version 2):
 * - `contents`: one row per content: its encoded manifest (`encodeManifest`), layout, pin,
 *   origin (kind, path, url, validator), added and last used (ms since the epoch), and
 *   `published` (`peapod share --publish`: strangers are served it; since version 2).
 * - `chunk_files`: one row per chunk file: its hash (the file's name), size, last use, and
 *   `use_seq`, a counter bumped on every use, which orders eviction exactly (two uses in one
 *   millisecond still have an order).
 * - `content_chunks`: the chunks held, one row per (content, index): the chunk's hash and
 *   exactly one location, `file_hash` (a chunk file, foreign key into `chunk_files`, so a file
 *   row cannot vanish under a chunk that uses it) or `reference_path` + `reference_offset`.
 *   A chunk file's reference count is the number of rows naming it, counted through the
 *   partial index `content_chunks_by_file`; there is no counter to drift.
 * - `url_mappings`: (url, validator) -> content; the rowid orders them (newest last).
 *   Deleting a content deletes its chunk rows and URL mappings (ON DELETE CASCADE).
 */

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION = 2;

/**
 * `MIGRATIONS[v]` upgrades an index of version `v` to `v + 1` (run in the transaction that
 * opens it, with the version row updated after it). Each step keeps every row.
 */
export const MIGRATIONS: Readonly<Record<number, string>> = {
  // Version 2: the published flag; every content of an older store is not published.
  1: `ALTER TABLE contents ADD COLUMN published INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1));`,
};

/** Creates every table of a new index (run once, in the transaction that opens it). */
export const SCHEMA = `
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE contents (
  content_id BLOB PRIMARY KEY NOT NULL,
  manifest BLOB NOT NULL,
  total_bytes INTEGER NOT NULL,
  chunk_size_bytes INTEGER NOT NULL,
  chunk_count INTEGER NOT NULL,
  pinned INTEGER NOT NULL CHECK (pinned IN (0, 1)),
  origin_kind TEXT NOT NULL CHECK (origin_kind IN ('shared', 'fetched', 'url')),
  origin_path TEXT,
  origin_url TEXT,
  origin_validator TEXT,
  added_at_ms INTEGER NOT NULL,
  last_used_at_ms INTEGER NOT NULL,
  published INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1))
) WITHOUT ROWID;
CREATE TABLE chunk_files (
  hash BLOB PRIMARY KEY NOT NULL,
  size_bytes INTEGER NOT NULL,
  last_used_at_ms INTEGER NOT NULL,
  use_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX chunk_files_by_use ON chunk_files (use_seq);
CREATE TABLE content_chunks (
  content_id BLOB NOT NULL REFERENCES contents (content_id) ON DELETE CASCADE,
  chunk_index INTEGER NOT NULL,
  hash BLOB NOT NULL,
  file_hash BLOB REFERENCES chunk_files (hash),
  reference_path TEXT,
  reference_offset INTEGER,
  PRIMARY KEY (content_id, chunk_index),
  CHECK ((file_hash IS NULL) <> (reference_path IS NULL)),
  CHECK (file_hash IS NULL OR file_hash = hash),
  CHECK ((reference_path IS NULL) = (reference_offset IS NULL))
) WITHOUT ROWID;
CREATE INDEX content_chunks_by_file ON content_chunks (file_hash) WHERE file_hash IS NOT NULL;
CREATE TABLE url_mappings (
  url TEXT NOT NULL,
  validator TEXT NOT NULL,
  content_id BLOB NOT NULL REFERENCES contents (content_id) ON DELETE CASCADE,
  added_at_ms INTEGER NOT NULL,
  UNIQUE (url, validator)
);
CREATE INDEX url_mappings_by_content ON url_mappings (content_id);
`;
