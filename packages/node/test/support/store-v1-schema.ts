/**
 * The store index's schema version 1, frozen as PeaPod shipped it (before the `published`
 * column), for the migration tests: an index made with it must open, upgraded, with nothing
 * lost. Never edit it: it is what old stores on users' disks hold.
 */
export const SCHEMA_V1 = `
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
  last_used_at_ms INTEGER NOT NULL
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
