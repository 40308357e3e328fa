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
 * - Chunk store: none yet (the store is the next issue): `read-chunk` is answered with
 *   undefined at once (the core tells the peer it has no such chunk) and `store-chunk` is
 *   dropped. An answer given while the host drains is queued by its driver, never re-entered.
 * Every answer goes through `feed` (the host's `input`), stamped with `performance.now()`.
 */
import type { CoreInput } from '@peapod/core';
import type { Logger } from 'pino';
import type { CoreJob } from './job-factory.js';
import type { OriginFetcher } from './http/origin-fetcher.js';
import type { TransferAdapters } from './transfer-adapters.js';

export interface IoAdapterOptions {
  readonly fetcher: OriginFetcher;
  /** The running job of a core download, if any. */
  readonly jobOf: (downloadId: number) => CoreJob | undefined;
  readonly logger: Logger;
  /** Test-only fault injection: flip bytes of what this device fetches (for itself and peers). */
  readonly corruptForPeers: boolean;
}

/** The adapters for `NodeHostOptions.transfers`. */
export function ioAdapters(
  options: IoAdapterOptions,
): (feed: (input: CoreInput) => void) => TransferAdapters {
  const { fetcher, jobOf, logger, corruptForPeers } = options;
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
      readChunk: (output) =>
        feed({
          type: 'chunk-read',
          nowMs: performance.now(),
          readId: output.readId,
          bytes: undefined,
        }),
      storeChunk: () => undefined,
    },
  });
}

/** Test-only fault injection (`corruptForPeers`): flips one byte of every block. */
function corrupt(bytes: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(bytes);
  if (copy.length > 0) copy[copy.length >> 1]! ^= 0xff;
  return copy;
}
