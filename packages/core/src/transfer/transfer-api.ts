/**
 * The transfer part of the core contract: the inputs a host feeds and the outputs it carries out
 * for downloads (content by ID, pooled URL) and for serving peers. These variants join
 * `CoreInput`, `CoreOutput` and `CoreEvent` in core.ts; they live here so the transfer modules,
 * the hosts and the simulator share one definition. See docs/architecture.md, "Transfers".
 *
 * Vocabulary:
 * - A *download* is one local job with a host-chosen `downloadId`: the bytes of one content or
 *   one URL object, delivered to the host in order through `deliver` outputs, each piece only
 *   after it verified.
 * - A *fetch* is one origin range request the core asks its host to perform (`fetch-origin`),
 *   either for its own download (self-assignment) or on behalf of a pod peer that sent
 *   FETCH_ASSIGN. The host streams the response body back as `origin-data` inputs in order, then
 *   `origin-end`.
 * - A *read* is the core asking its host for a stored chunk it will serve to a peer.
 */
import type { Manifest } from '../content/manifest.js';
import type { HttpHeader } from '../wire/messages.js';
import type { ReasonCode } from '../wire/reason-codes.js';

/** What to download. */
export type DownloadSource =
  | {
      readonly kind: 'content';
      /** The content ID (docs/content.md). */
      readonly contentId: Uint8Array;
      /** The manifest, when the host has it; otherwise the core fetches it from peers. */
      readonly manifest?: Manifest;
    }
  | {
      readonly kind: 'url';
      readonly url: string;
      /** Object size from the origin's first response (Content-Length / Content-Range). */
      readonly totalBytes: number;
      /** The ETag every range is pinned to (If-Range / If-Match). Empty: none known. */
      readonly validator: string;
      /** Request headers every fetch must carry (e.g. authorization). */
      readonly headers: readonly HttpHeader[];
      /** SHA-256 of the whole object, when the user or the origin stated one. */
      readonly sha256?: Uint8Array;
      /** Piece size for assignment; default chosen by the core. */
      readonly pieceSizeBytes?: number;
      /** Pod peers may help (FETCH_ASSIGN). Default true. */
      readonly pooled?: boolean;
    };

/** Transfer inputs (join `CoreInput`). All carry `nowMs`. */
export type TransferInput =
  | {
      readonly type: 'start-download';
      readonly nowMs: number;
      readonly downloadId: number;
      readonly source: DownloadSource;
      /** 0 is most urgent. Default 128. */
      readonly priority?: number;
    }
  | { readonly type: 'cancel-download'; readonly nowMs: number; readonly downloadId: number }
  /** The host consumed `byteCount` delivered bytes (written to disk or stdout): frees window. */
  | {
      readonly type: 'delivered';
      readonly nowMs: number;
      readonly downloadId: number;
      readonly byteCount: number;
    }
  /** The next bytes of an origin fetch's response body, in order. */
  | {
      readonly type: 'origin-data';
      readonly nowMs: number;
      readonly fetchId: number;
      readonly bytes: Uint8Array;
    }
  /**
   * An origin fetch ended. `ok`: all bytes of the range were given. `changed`: the origin says
   * the object is no longer the pinned version (412, or a 200 instead of 206). `error`: anything
   * else (status, network), with a one-line detail.
   */
  | {
      readonly type: 'origin-end';
      readonly nowMs: number;
      readonly fetchId: number;
      readonly outcome: 'ok' | 'changed' | 'error';
      readonly detail: string;
    }
  /** Answer to `read-chunk`: the stored bytes, or undefined if the store no longer has them. */
  | {
      readonly type: 'chunk-read';
      readonly nowMs: number;
      readonly readId: number;
      readonly bytes: Uint8Array | undefined;
    }
  /**
   * The host holds these chunks of a content in its store (after a download, or because it
   * imported the content): the core may serve them and announces them to peers.
   */
  | {
      readonly type: 'content-available';
      readonly nowMs: number;
      readonly manifest: Manifest;
      /** Chunk indices held; all when absent. */
      readonly chunkIndices?: readonly number[];
    };

/** Transfer outputs (join `CoreOutput`). */
export type TransferOutput =
  | {
      readonly type: 'fetch-origin';
      readonly fetchId: number;
      readonly url: string;
      readonly rangeStart: number;
      /** Exclusive. */
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
  /** Verified bytes of a download, strictly in order, each byte exactly once. */
  | {
      readonly type: 'deliver';
      readonly downloadId: number;
      readonly offset: number;
      readonly bytes: Uint8Array;
    }
  /** A verified chunk the host should keep in its store (content downloads). */
  | {
      readonly type: 'store-chunk';
      readonly contentId: Uint8Array;
      readonly chunkIndex: number;
      readonly chunkHash: Uint8Array;
      readonly bytes: Uint8Array;
    };

/** Transfer events (join `CoreEvent`). */
export type TransferEvent =
  | {
      readonly type: 'download:progress';
      readonly downloadId: number;
      readonly verifiedBytes: number;
      readonly totalBytes: number;
      /** Verified bytes per source: 'self' or a Device ID in hex. */
      readonly bySource: Readonly<Record<string, number>>;
    }
  | {
      readonly type: 'download:complete';
      readonly downloadId: number;
      readonly totalBytes: number;
      /** SHA-256 of the whole delivered object. */
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
