/**
 * The Core contract as the simulator drives it: the link-level inputs and outputs that
 * `@peapod/core` exports today, joined with the transfer variants of
 * packages/core/src/transfer/transfer-api.ts.
 *
 * Why a mirror: the transfer types are not yet part of `@peapod/core`'s public exports (only its
 * index is public), and the Core's `handle`/`poll` do not yet accept or return them. The host
 * side of the simulator is written against the full contract now; `asSimCore` views a `Core`
 * through it. The shapes below are copied field for field from transfer-api.ts; when the core
 * exports them, this file shrinks to re-exports and the cast disappears.
 */
import type {
  Core,
  CoreEvent,
  CoreInput,
  CoreOutput,
  HttpHeader,
  Manifest,
  ReasonCode,
} from '@peapod/core';

/** What to download (transfer-api.ts `DownloadSource`). */
export type DownloadSource =
  | {
      readonly kind: 'content';
      readonly contentId: Uint8Array;
      readonly manifest?: Manifest;
    }
  | {
      readonly kind: 'url';
      readonly url: string;
      readonly totalBytes: number;
      readonly validator: string;
      readonly headers: readonly HttpHeader[];
      readonly sha256?: Uint8Array;
      readonly pieceSizeBytes?: number;
      readonly pooled?: boolean;
    };

/** transfer-api.ts `TransferInput`. */
export type TransferInput =
  | {
      readonly type: 'start-download';
      readonly nowMs: number;
      readonly downloadId: number;
      readonly source: DownloadSource;
      readonly priority?: number;
    }
  | { readonly type: 'cancel-download'; readonly nowMs: number; readonly downloadId: number }
  | {
      readonly type: 'delivered';
      readonly nowMs: number;
      readonly downloadId: number;
      readonly byteCount: number;
    }
  | {
      readonly type: 'origin-data';
      readonly nowMs: number;
      readonly fetchId: number;
      readonly bytes: Uint8Array;
    }
  | {
      readonly type: 'origin-end';
      readonly nowMs: number;
      readonly fetchId: number;
      readonly outcome: 'ok' | 'changed' | 'error';
      readonly detail: string;
    }
  | {
      readonly type: 'chunk-read';
      readonly nowMs: number;
      readonly readId: number;
      readonly bytes: Uint8Array | undefined;
    }
  | {
      readonly type: 'content-available';
      readonly nowMs: number;
      readonly manifest: Manifest;
      readonly chunkIndices?: readonly number[];
    };

/** transfer-api.ts `TransferOutput`. */
export type TransferOutput =
  | {
      readonly type: 'fetch-origin';
      readonly fetchId: number;
      readonly url: string;
      readonly rangeStart: number;
      readonly rangeEnd: number;
      readonly validator: string;
      readonly headers: readonly HttpHeader[];
    }
  | { readonly type: 'cancel-fetch'; readonly fetchId: number }
  | {
      readonly type: 'read-chunk';
      readonly readId: number;
      readonly contentId: Uint8Array;
      readonly chunkIndex: number;
      readonly chunkHash: Uint8Array;
    }
  | {
      readonly type: 'deliver';
      readonly downloadId: number;
      readonly offset: number;
      readonly bytes: Uint8Array;
    }
  | {
      readonly type: 'store-chunk';
      readonly contentId: Uint8Array;
      readonly chunkIndex: number;
      readonly chunkHash: Uint8Array;
      readonly bytes: Uint8Array;
    };

/** transfer-api.ts `TransferEvent`. */
export type TransferEvent =
  | {
      readonly type: 'download:progress';
      readonly downloadId: number;
      readonly verifiedBytes: number;
      readonly totalBytes: number;
      readonly bySource: Readonly<Record<string, number>>;
    }
  | {
      readonly type: 'download:complete';
      readonly downloadId: number;
      readonly totalBytes: number;
      readonly sha256: Uint8Array;
    }
  | {
      readonly type: 'download:failed';
      readonly downloadId: number;
      readonly reason: string;
      readonly detail: string;
    }
  | {
      readonly type: 'peer:banned';
      readonly deviceId: Uint8Array;
      readonly reason: ReasonCode;
      readonly detail: string;
    };

export type SimInput = CoreInput | TransferInput;
export type SimCoreEvent = CoreEvent | TransferEvent;
type LinkOutput = Exclude<CoreOutput, { type: 'event' }>;
export type SimOutput =
  | LinkOutput
  | TransferOutput
  | { readonly type: 'event'; readonly event: SimCoreEvent };

/** The Core seen through the full contract. */
export interface SimCore {
  handle(input: SimInput): void;
  poll(): SimOutput | undefined;
  nextDeadlineMs(): number | undefined;
  /** Present once the Core runs transfers: bytes a download holds in memory now. */
  downloadMemoryBytes?(downloadId: number): number;
}

/** Views a Core through the full contract (see the module header for why this cast exists). */
export function asSimCore(core: Core): SimCore {
  return core as unknown as SimCore;
}

/** True when this build of the Core runs transfers (it exposes `downloadMemoryBytes`). */
export function coreRunsTransfers(core: SimCore): boolean {
  return typeof core.downloadMemoryBytes === 'function';
}
