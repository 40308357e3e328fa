/**
 * The seam between the Node host's one output switch (node-host.ts) and the I/O its transfer
 * outputs become (io-adapters.ts): one adapter per kind of work, each method starting the work
 * and returning at once; its answer (`origin-data`, `delivered-read`, `chunk-read`, ...) goes to
 * the `feed` the adapters were built with (the host's `input`, queued while the host drains).
 * `NO_TRANSFERS` stands in for a host whose core runs no transfers (it never emits these).
 */
import { PeapodError, type TransferOutput } from '@peapod/core';

type OutputOf<T extends TransferOutput['type']> = Extract<TransferOutput, { type: T }>;

/**
 * The I/O a core's transfer outputs become, supplied by the daemon (io-adapters.ts). Each
 * method starts the work and returns; its answer (`origin-data`, `delivered-read`, ...) goes to
 * the `feed` the factory was given (the host's `input`).
 */
export interface TransferAdapters {
  /** This device's own link to origins: `fetch-origin` and `cancel-fetch`. */
  readonly origin: {
    fetch(output: OutputOf<'fetch-origin'>): void;
    cancel(fetchId: number): void;
  };
  /** The download jobs' sinks: `deliver` and `read-delivered`. */
  readonly delivery: {
    deliver(output: OutputOf<'deliver'>): void;
    readDelivered(output: OutputOf<'read-delivered'>): void;
  };
  /** The chunk store: `read-chunk` (answer `chunk-read`) and `store-chunk`. */
  readonly store: {
    readChunk(output: OutputOf<'read-chunk'>): void;
    storeChunk(output: OutputOf<'store-chunk'>): void;
  };
}

export const NO_TRANSFERS: TransferAdapters = (() => {
  const never = (output: { type: string }): never => {
    throw new PeapodError(
      'PEAPOD_ERR_ASSERTION',
      `transfer output ${output.type} from a core that was told not to run transfers`,
    );
  };
  return {
    origin: { fetch: never, cancel: () => never({ type: 'cancel-fetch' }) },
    delivery: { deliver: never, readDelivered: never },
    store: { readChunk: never, storeChunk: never },
  };
})();
