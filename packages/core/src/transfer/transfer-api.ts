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
 * - A *read* is the core asking its host for a stored chunk it will serve to a peer
 *   (`read-chunk`), or for bytes it already delivered (`read-delivered`, below).
 *
 * Integrity of what a download delivers (docs/protocol.md 7.3, DESIGN.md decision 6):
 * - Content by ID: every delivered byte verified against the manifest first. Never repaired.
 * - Pooled URL: there is no manifest, so the whole object is the integrity unit. A helper's
 *   piece is spot checked (a random 16-32 KiB sample refetched from the origin) before it is
 *   delivered; a helper caught lying later (banned) makes every piece it gave this download
 *   suspect: the core refetches them and sends them again as `deliver` with `repair: true`,
 *   which the host writes over the same range in place (e.g. `pwrite`). A host that cannot
 *   overwrite (a stream to stdout, an HTTP response) must fail its output with a clear error
 *   (e.g. "a pod peer sent bad bytes that were already streamed; re-run with an output file").
 *   After any repair the running digest is void, so before `download:complete` the core reads
 *   the whole output back through `read-delivered` / `delivered-read` (bounded slices) and
 *   hashes it: `download:complete.sha256` is always the digest of what the host holds.
 * - Guarantee: with a known SHA-256 the output is exact or the download fails with
 *   'sha256-mismatch' (the host then falls back to a plain single-source download: that costs
 *   time, never correctness). Without one, a helper caught lying costs only time; a helper
 *   whose corruption escapes every sample is caught only by an end-to-end digest.
 *
 * Digest responsibility (DESIGN.md decision 15: one SHA-256 pass per delivered byte). The core
 * hashes what it delivers once, as it delivers it, and reports it in `download:complete.sha256`;
 * after repairs it reads the output back once and reports that digest instead. The host trusts
 * it and never hashes SHA-256 again (it computes only other algorithms it needs: MD5 for an S3
 * ETag, SHA-512 from a Repr-Digest). A content download reports no `sha256`: each chunk was
 * verified against the manifest (the content ID covers them all), and a whole-object digest
 * would be a second pass over every byte. Exception, a resumed URL download (`startOffset > 0`): the
 * core sees only the tail, so it does not hash at all, `sha256` is undefined, and the host
 * hashes the whole object once (the prefix from disk, then the new bytes as it writes them; if
 * it saw a `repair` deliver, from its output once the download completed). The core does not
 * read back a resumed download after repairs: its digest would be of a part of the object.
 *
 * Fallbacks: `download:failed.fallback` is the core's decision of what the host does next
 * (fallback-policy.ts); the host carries it out and never re-decides.
 */
import type { Manifest } from '../content/manifest.js';
import type { HttpHeader } from '../wire/messages.js';
import type { IndexRange } from '../wire/messages.js';
import type { ReasonCode } from '../wire/reason-codes.js';

/** What to download. */
export type DownloadSource =
  | {
      readonly kind: 'content';
      /** The content ID (docs/content.md). */
      readonly contentId: Uint8Array;
      /** The manifest, when the host has it; otherwise the core fetches it from peers. */
      readonly manifest?: Manifest;
      /**
       * Requires `manifest` (the ranges are checked against its chunk count); ranges sorted,
       * disjoint, non-empty.
       * Fetch and deliver only these chunks (`peapod fetch --only GLOB`: the chunks that hold
       * the chosen files). `deliver` offsets stay content offsets: the selected chunks' ranges
       * are delivered in order, the rest skipped. Default: every chunk.
       */
      readonly chunks?: readonly IndexRange[];
      /**
       * No newly verified byte for this long while chunks it still needs are held by no ready
       * link (or the manifest by none) fails the download with reason 'unavailable', its
       * detail naming what is missing (chunk count, bytes). While some ready link holds a
       * missing chunk, the download waits for it (stalled sources are reassigned as always).
       * Default: wait for good (no timeout).
       */
      readonly stallTimeoutMs?: number;
    }
  | {
      readonly kind: 'url';
      readonly url: string;
      /** Object size from the origin's first response (Content-Length / Content-Range). */
      readonly totalBytes: number;
      /**
       * Resume: download only `[startOffset, totalBytes)` (the host holds the bytes before it).
       * `deliver` and `read-delivered` offsets, progress and `download:complete` then count from
       * `startOffset` (offset 0 is object byte `startOffset`), and `sha256` must be absent: the
       * host verifies the whole object. Default 0.
       */
      readonly startOffset?: number;
      /**
       * The pin every range is tied to, opaque to the core: the host encodes and checks it (in
       * the Node host a bare strong ETag, or another validator level; FETCH_ASSIGN carries it
       * as is). Empty: none known.
       */
      readonly validator: string;
      /**
       * `strong`: the pin names one exact sequence of bytes (a strong ETag), so a helper's range
       * that disagrees with this device's own fetch of it is certainly a lie. `weak` (a
       * Last-Modified date, a weak ETag, the length alone): the object may have changed in a
       * way the pin cannot see, so a mismatch is one strike. Default: `strong` when `validator`
       * is not empty (before pin levels, a validator was always a strong ETag), else `weak`.
       */
      readonly pinStrength?: 'strong' | 'weak';
      /** Request headers every fetch must carry (e.g. authorization). */
      readonly headers: readonly HttpHeader[];
      /** SHA-256 of the whole object, when the user or the origin stated one. */
      readonly sha256?: Uint8Array | undefined;
      /** Piece size for assignment; default chosen by the core. */
      readonly pieceSizeBytes?: number;
      /** Pod peers may help (FETCH_ASSIGN). Default true. */
      readonly pooled?: boolean;
      /**
       * No newly verified byte (and no new byte of this device's own fetches) for this long
       * fails the download with reason 'stalled', naming who held the next missing piece
       * (stall-watch.ts). Default 60 000.
       */
      readonly stallTimeoutMs?: number;
      /**
       * Fallbacks already carried out for this object: 0 (the default) for the first try; a
       * host carrying out a `download:failed.fallback` passes the previous attempt + 1.
       */
      readonly attempt?: number;
    };

/** What the host does after a download failed: the core's decision (fallback-policy.ts). */
export type DownloadFallback =
  | { readonly action: 'none' }
  /** Probe the origin again and start a pooled download pinned to the new version. */
  | { readonly action: 'repin'; readonly reason: string }
  /** Discard the output and download from the origin alone. */
  | { readonly action: 'origin-only'; readonly reason: string };

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
  /**
   * The host consumed `byteCount` more delivered bytes (written to disk or stdout): frees
   * window. It counts the bytes of `deliver` outputs in the order they were given, repairs
   * included (a host that writes them one at a time acknowledges each after its write).
   */
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
   * the object is no longer the pinned version (412, or a 200 instead of 206). `refused`: a
   * `forPeer` fetch whose destination the host's policy refuses (a private or loopback address,
   * DESIGN.md decision 14); no request was sent there. `error`: anything else (status,
   * network), with a one-line detail.
   */
  | {
      readonly type: 'origin-end';
      readonly nowMs: number;
      readonly fetchId: number;
      readonly outcome: OriginOutcome;
      readonly detail: string;
    }
  /** Answer to `read-chunk`: the stored bytes, or undefined if the store no longer has them. */
  | {
      readonly type: 'chunk-read';
      readonly nowMs: number;
      readonly readId: number;
      readonly bytes: Uint8Array | undefined;
      /**
       * True: the host checked `bytes` against the requested `chunkHash` (its store verifies
       * every read), so the core does not hash them again (DESIGN.md decision 15: one SHA-256
       * pass). Default false: the core verifies them before serving or delivering.
       */
      readonly verified?: boolean;
    }
  /**
   * Answer to `read-delivered`: exactly the `length` bytes the host now holds at `offset` of
   * that download's output (after every earlier `deliver`, repairs included, was written), or
   * undefined if it cannot read its output back (a stream): the download then fails with
   * reason 'output-unreadable'. Answers may come in any order.
   */
  | {
      readonly type: 'delivered-read';
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
      /**
       * true: the user published the content (`peapod share --publish`): strangers may fetch it
       * and, when this device broadcasts, gossip announces it (core.ts, stranger-content.ts).
       * It stays so until `published: false` (`peapod unpublish`: strangers get `notFound` from
       * then on, and gossip announces it no longer held here) or `content-removed` of all its
       * chunks. Absent: no change.
       */
      readonly published?: boolean;
    }
  /**
   * The host no longer holds these chunks (`peapod rm`, eviction, a copy that failed its check
   * on read): the core stops serving them and sends CHUNK_REMOVE to every ready link. All
   * chunks when `chunkIndices` is absent; a content with no chunk left is forgotten, with its
   * URL mappings (`url-content`).
   */
  | {
      readonly type: 'content-removed';
      readonly nowMs: number;
      readonly contentId: Uint8Array;
      readonly chunkIndices?: readonly number[];
    }
  /**
   * The host holds (some of) content `contentId` as the bytes of `url` at version `validator`
   * (a completed URL download, DESIGN.md decision 16): the core answers pod peers' URL_QUERY
   * for that URL with it. A newer mapping for the same URL and validator replaces the old one.
   */
  | {
      readonly type: 'url-content';
      readonly nowMs: number;
      readonly url: string;
      /** The pin of that version, as the host encodes it (`DownloadSource.validator`). */
      readonly validator: string;
      readonly contentId: Uint8Array;
    }
  /**
   * Ask every ready pod link which content holds `url` (URL_QUERY); answered by one
   * `url:lookup` event with the same `lookupId`, once every asked link answered or closed, or
   * after `URL_LOOKUP_TIMEOUT_MS`, or at once when no link can be asked.
   */
  | {
      readonly type: 'lookup-url';
      readonly nowMs: number;
      readonly lookupId: number;
      readonly url: string;
    };

/** One pod member's answer to a URL lookup: it holds `contentId` as `url` at `validator`. */
export interface UrlHolder {
  readonly deviceId: Uint8Array;
  readonly validator: string;
  readonly contentId: Uint8Array;
}

/** How long a `lookup-url` waits for the links it asked. */
export const URL_LOOKUP_TIMEOUT_MS = 1_000;

/** How an origin fetch ended (`origin-end`). */
export type OriginOutcome = 'ok' | 'changed' | 'error' | 'refused';

/** Transfer outputs (join `CoreOutput`). */
export type TransferOutput =
  | {
      readonly type: 'fetch-origin';
      readonly fetchId: number;
      /**
       * True: on behalf of a pod peer (its FETCH_ASSIGN), so the host must apply its destination
       * policy (public addresses only unless the user allowed private ones, DESIGN.md decision
       * 14) and answer a refusal with `origin-end` `refused`. False: for this device's own
       * download, which may reach any address the user chose.
       */
      readonly forPeer: boolean;
      readonly url: string;
      readonly rangeStart: number;
      /** Exclusive. */
      readonly rangeEnd: number;
      readonly validator: string;
      readonly headers: readonly HttpHeader[];
      /**
       * The object's total length, when this device knows it (its own downloads; a helper's
       * FETCH_ASSIGN does not carry it): the host checks each answer's complete length too.
       */
      readonly totalBytes?: number;
    }
  | { readonly type: 'cancel-fetch'; readonly fetchId: number }
  | {
      readonly type: 'read-chunk';
      readonly readId: number;
      readonly contentId: Uint8Array;
      readonly chunkIndex: number;
      readonly chunkHash: Uint8Array;
    }
  /**
   * Verified bytes of a download. Without `repair`: strictly in order, each offset exactly once
   * (the next byte after the previous non-repair `deliver`). With `repair: true` (pooled URL
   * downloads only; see the module header): bytes for a range that was already delivered and
   * turned out to come from a lying helper; the host overwrites that range in place. A host
   * that cannot (a stream) must fail its output with a clear error, not skip the repair.
   * Both kinds count against the memory window until acknowledged with `delivered`.
   */
  | {
      readonly type: 'deliver';
      readonly downloadId: number;
      readonly offset: number;
      readonly bytes: Uint8Array;
      /** True: overwrite `[offset, offset + bytes.length)`, delivered before. */
      readonly repair?: boolean;
    }
  /**
   * Read back `[offset, offset + length)` of a download's output, as the host holds it after
   * every earlier `deliver`; answer with `delivered-read` (same `readId`). Only pooled URL
   * downloads that repaired something ask, once every byte was delivered, in slices of at
   * most 1 MiB with at most 4 MiB outstanding.
   */
  | {
      readonly type: 'read-delivered';
      readonly readId: number;
      readonly downloadId: number;
      readonly offset: number;
      readonly length: number;
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
      /**
       * Bytes verified and not suspect: each byte counts once. It can go down when a helper is
       * banned (its pieces become suspect) and comes back as they are repaired.
       */
      readonly verifiedBytes: number;
      readonly totalBytes: number;
      /** `verifiedBytes` per source: 'self' or a Device ID in hex. */
      readonly bySource: Readonly<Record<string, number>>;
    }
  | {
      readonly type: 'download:complete';
      readonly downloadId: number;
      readonly totalBytes: number;
      /**
       * SHA-256 of the whole output as the host holds it: of the delivered bytes, or, after a
       * repair, of the output read back (`read-delivered`). Equal to the source's `sha256`
       * when that was given (otherwise the download fails with 'sha256-mismatch'). Undefined
       * for a content download (verified chunk by chunk against its manifest) and for a resumed
       * URL download (`startOffset > 0`: the host hashes the whole object); see "Digest
       * responsibility" above.
       */
      readonly sha256?: Uint8Array | undefined;
    }
  | {
      readonly type: 'download:failed';
      readonly downloadId: number;
      /**
       * 'cancelled', 'origin-changed', 'origin-error', 'unavailable' (a content download whose
       * missing chunks no ready link held for its `stallTimeoutMs`), 'sha256-mismatch' (discard the output;
       * retry from the origin alone), 'output-unreadable' (a repair needed a read-back the
       * host could not give), 'stalled' (no progress for the source's `stallTimeoutMs`; the
       * detail names the origin or peer that held the next missing piece).
       */
      readonly reason: string;
      readonly detail: string;
      /** What the host does next (fallback-policy.ts); it never re-decides. */
      readonly fallback: DownloadFallback;
    }
  /**
   * A content download started without a manifest got it from a peer (checked against the
   * content ID), before any of its chunks: the host records it (its store indexes chunks by
   * it) and learns the layout (a tree's file table).
   */
  | {
      readonly type: 'download:manifest';
      readonly downloadId: number;
      readonly manifest: Manifest;
    }
  /** The answer to `lookup-url`: every pod member's mappings for the URL (maybe none). */
  | {
      readonly type: 'url:lookup';
      readonly lookupId: number;
      readonly url: string;
      readonly holders: readonly UrlHolder[];
    }
  | {
      readonly type: 'peer:banned';
      readonly deviceId: Uint8Array;
      readonly reason: ReasonCode;
      readonly detail: string;
    };
