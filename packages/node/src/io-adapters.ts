/**
 * The daemon's I/O adapters: what the core's transfer outputs become on this device, handed to
 * the NodeHost (node-host.ts `TransferAdapters`), whose one switch routes each output here.
 *
 * Theory of operation
 * - Origin: `fetch-origin` starts a ranged GET through this device's own internet link
 *   (http/origin-fetcher.ts, with its destination policy for peers' fetches); the body streams
 *   back as `origin-data`, then `origin-end`. `cancel-fetch` aborts it silently.
 * - Delivery: `deliver` goes to the download job of its `downloadId` (download-job.ts writes it
 *   to the job's sink and acknowledges it with `delivered`); `read-delivered` reads the job's
 *   output back and answers `delivered-read` (undefined when there is no job or the sink
 *   cannot be read, so the core fails that download with 'output-unreadable').
 * - Chunk store (store/store-api.ts): `read-chunk` is `store.readChunk` (verified there; a
 *   chunk it does not hold, or whose copy failed its check, is answered undefined and the core
 *   tells the peer so), answered as `chunk-read`. `store-chunk` is `store.putChunk`; when the
 *   store cannot keep it (`StoreFullError`: its budget is full of pinned chunks, or the disk is
 *   full) the content jobs of that content fail with the store's sentence (`onStoreFailed`);
 *   after any write error the core is told the chunk is not held (`content-removed`), so no
 *   peer is sent to this device for it. Without a store (no data directory) every
 *   read is answered undefined and every chunk dropped.
 *   An answer given while the host drains is queued by its driver, never re-entered.
 * Every answer goes through `feed` (the host's `input`), stamped with `performance.now()`.
 */
import { toHex, type CoreInput } from '@peapod/core';
import type { Logger } from 'pino';
import type { CoreJob } from './job-factory.js';
import type { OriginFetcher } from './http/origin-fetcher.js';
import type { TransferAdapters } from './transfer-adapters.js';
import { StoreFullError, type ChunkStoreApi } from './store/store-api.js';

export interface IoAdapterOptions {
  readonly fetcher: OriginFetcher;
  /** The running job of a core download, if any. */
  readonly jobOf: (downloadId: number) => CoreJob | undefined;
  readonly logger: Logger;
  /** Test-only fault injection: flip bytes of what this device fetches (for itself and peers). */
  readonly corruptForPeers: boolean;
  /** The chunk store; undefined: none (no data directory). */
  readonly store?: () => ChunkStoreApi | undefined;
  /** The store could not keep a chunk of `contentId`: fail that content's jobs with `message`. */
  readonly onStoreFailed?: (contentId: Uint8Array, message: string) => void;
  /** Every store write started, settled or not (the daemon lets them settle before closing). */
  readonly storeWrites?: Set<Promise<unknown>>;
}

/** The adapters for `NodeHostOptions.transfers`. */
export function ioAdapters(
  options: IoAdapterOptions,
): (feed: (input: CoreInput) => void) => TransferAdapters {
  const { fetcher, jobOf, logger, corruptForPeers } = options;
  const store = options.store ?? (() => undefined);
  // Chunks being written: a read of one waits for its write (the core stores a chunk beyond
  // its delivery window and reads it back when delivery nears, maybe before the write ended).
  const writing = new Map<string, Promise<unknown>>();
  return (feed) => ({
    origin: {
      fetch(output) {
        const { fetchId } = output;
        fetcher.start(output, {
          onData: (bytes) =>
            feed({
              type: 'origin-data',
              nowMs: performance.now(),
              fetchId,
              bytes: corruptForPeers ? corrupt(bytes) : bytes,
            }),
          onEnd: (outcome, detail) => {
            if (outcome === 'refused') logger.warn({ detail }, 'refused a pod peer fetch');
            feed({ type: 'origin-end', nowMs: performance.now(), fetchId, outcome, detail });
          },
        });
      },
      cancel: (fetchId) => fetcher.cancel(fetchId),
    },
    delivery: {
      deliver(output) {
        jobOf(output.downloadId)?.onDeliver(output.offset, output.bytes, output.repair === true);
      },
      readDelivered(output) {
        const { readId } = output;
        const read =
          jobOf(output.downloadId)?.readDelivered(output.offset, output.length) ??
          Promise.resolve(undefined);
        void read
          .catch(() => undefined)
          .then((bytes) =>
            feed({ type: 'delivered-read', nowMs: performance.now(), readId, bytes }),
          );
      },
    },
    store: {
      readChunk(output) {
        const { readId, contentId, chunkIndex } = output;
        const written = writing.get(chunkKey(contentId, chunkIndex)) ?? Promise.resolve();
        const read = written.then(
          () => store()?.readChunk(contentId, chunkIndex) ?? Promise.resolve(undefined),
        );
        void read
          .catch((error: unknown) => {
            logger.warn({ error: errorText(error) }, 'chunk store read failed');
            return undefined;
          })
          // The store verified what it returns against this chunk's hash: the core need not.
          .then((bytes) =>
            feed({
              type: 'chunk-read',
              nowMs: performance.now(),
              readId,
              bytes,
              verified: bytes !== undefined,
            }),
          );
      },
      storeChunk(output) {
        const { contentId, chunkIndex, bytes } = output;
        // The core verified the chunk before `store-chunk`: the store need not hash it again.
        const put = store()?.putChunk(contentId, chunkIndex, bytes, { verified: true });
        if (put === undefined) return;
        const key = chunkKey(contentId, chunkIndex);
        const settled = put.catch((error: unknown) => {
          const message = errorText(error);
          // A full store fails the fetch (its resume would be lost, and the disk is full for the
          // output too); another write error is logged and the fetch goes on.
          if (error instanceof StoreFullError) options.onStoreFailed?.(contentId, message);
          else logger.warn({ error: message }, 'chunk store write failed');
          feed({
            type: 'content-removed',
            nowMs: performance.now(),
            contentId,
            chunkIndices: [chunkIndex],
          });
        });
        writing.set(key, settled);
        options.storeWrites?.add(settled);
        void settled.then(() => {
          if (writing.get(key) === settled) writing.delete(key);
          options.storeWrites?.delete(settled);
        });
      },
    },
  });
}

function chunkKey(contentId: Uint8Array, index: number): string {
  return `${toHex(contentId)}:${index}`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Test-only fault injection (`corruptForPeers`): flips one byte of every block. */
function corrupt(bytes: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(bytes);
  if (copy.length > 0) copy[copy.length >> 1]! ^= 0xff;
  return copy;
}
