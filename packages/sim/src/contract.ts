/**
 * The Core contract as the simulator drives it: `@peapod/core`'s `CoreInput`, `CoreOutput` and
 * `CoreEvent`, which include the transfer variants of transfer-api.ts. Kept as one small module
 * so the simulator's other modules name the contract in one way.
 */
import type { Core, CoreEvent, CoreInput, CoreOutput } from '@peapod/core';

export type { DownloadSource, TransferInput, TransferOutput, TransferEvent } from '@peapod/core';

export type SimInput = CoreInput;
export type SimCoreEvent = CoreEvent;
export type SimOutput = CoreOutput;
export type SimCore = Core;

/** The Core as the simulator drives it (it is the real Core; no cast, no mirror). */
export function asSimCore(core: Core): SimCore {
  return core;
}

/** True when this Core runs transfers. */
export function coreRunsTransfers(core: SimCore): boolean {
  return typeof core.downloadMemoryBytes === 'function';
}
