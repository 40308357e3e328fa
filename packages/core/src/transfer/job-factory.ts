/**
 * The job factory: turns a host's command into a transfer job of the right kind, after checking
 * its arguments (host misuse throws PEAPOD_ERR_INVALID_ARGUMENT, naming the field). The kind
 * follows from the source: a content ID makes a `ContentDownload`, a URL a `UrlDownload`.
 *
 * A new kind plugs in here: an upload would come as its own input (`start-upload`, with the
 * object's parts and the destination) and be made into an `UploadJob` (kind 'upload'), which
 * the engine schedules, routes answers to and tells about links and bans like any other job.
 */
import { toHex } from '../bytes.js';
import { chunkCount } from '../content/layout.js';
import { invalidArgument } from '../errors.js';
import { selectionProblem } from './chunk-selection.js';
import { ContentDownload, type ChunkReader } from './content-download.js';
import { STALL_TIMEOUT_DEFAULT_MS } from './stall-watch.js';
import type { TransferInput } from './transfer-api.js';
import type { DownloadJob, TransferContext } from './transfer-context.js';
import { UrlDownload } from './url-download.js';

/** Smallest piece of a URL download (smaller ones would be mostly overhead). */
export const URL_PIECE_MIN_BYTES = 64 * 1024;

/** Default priority of a job (0 is most urgent). */
export const PRIORITY_DEFAULT = 128;

/**
 * A download job for `start-download`.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a malformed command.
 */
export function createDownloadJob(
  ctx: TransferContext,
  input: Extract<TransferInput, { type: 'start-download' }>,
  reader: ChunkReader,
  nowMs: number,
): DownloadJob {
  const { downloadId, source } = input;
  if (!Number.isSafeInteger(downloadId))
    invalidArgument('downloadId', `${downloadId} is not an integer`);
  const priority = input.priority ?? PRIORITY_DEFAULT;
  if (!Number.isInteger(priority) || priority < 0 || priority > 255) {
    invalidArgument('priority', `${priority} is not an integer in [0, 255]`);
  }
  if (source.kind === 'content') {
    if (source.contentId.length !== 32) invalidArgument('source.contentId', 'must be 32 bytes');
    if (
      source.manifest !== undefined &&
      toHex(source.manifest.contentId) !== toHex(source.contentId)
    ) {
      invalidArgument('source.manifest', 'belongs to another content ID');
    }
    if (source.chunks !== undefined) {
      // The ranges are checked against the chunk count, which only the manifest gives (a host
      // that chose chunks from a tree's files has it).
      if (source.manifest === undefined) {
        invalidArgument('source.chunks', 'needs source.manifest (its chunk count)');
      }
      const problem = selectionProblem(source.chunks, chunkCount(source.manifest));
      if (problem !== undefined) invalidArgument('source.chunks', problem);
    }
    const { stallTimeoutMs } = source;
    if (
      stallTimeoutMs !== undefined &&
      (!Number.isSafeInteger(stallTimeoutMs) || stallTimeoutMs <= 0)
    ) {
      invalidArgument('source.stallTimeoutMs', `${stallTimeoutMs} is not a positive integer`);
    }
    return new ContentDownload(
      ctx,
      downloadId,
      priority,
      source.contentId,
      { manifest: source.manifest, chunks: source.chunks, stallTimeoutMs },
      nowMs,
      reader,
    );
  }
  if (!Number.isSafeInteger(source.totalBytes) || source.totalBytes < 0) {
    invalidArgument('source.totalBytes', `${source.totalBytes} is not a non-negative integer`);
  }
  const pieceSizeBytes = source.pieceSizeBytes ?? ctx.settings.pieceSizeBytes;
  if (!Number.isSafeInteger(pieceSizeBytes) || pieceSizeBytes < URL_PIECE_MIN_BYTES) {
    invalidArgument('source.pieceSizeBytes', `${pieceSizeBytes} is below ${URL_PIECE_MIN_BYTES}`);
  }
  if (source.sha256 !== undefined && source.sha256.length !== 32) {
    invalidArgument('source.sha256', 'must be 32 bytes');
  }
  const startOffset = source.startOffset ?? 0;
  if (!Number.isSafeInteger(startOffset) || startOffset < 0 || startOffset > source.totalBytes) {
    invalidArgument('source.startOffset', `${startOffset} is not within the object`);
  }
  if (startOffset > 0 && source.sha256 !== undefined) {
    invalidArgument('source.sha256', 'covers the whole object; the core sees only a resumed part');
  }
  // Not `??`: a null from a host's JSON is refused, not taken for the default.
  const stallTimeoutMs =
    source.stallTimeoutMs === undefined ? STALL_TIMEOUT_DEFAULT_MS : source.stallTimeoutMs;
  if (!Number.isSafeInteger(stallTimeoutMs) || stallTimeoutMs <= 0) {
    invalidArgument('source.stallTimeoutMs', `${stallTimeoutMs} is not a positive integer`);
  }
  const attempt = source.attempt === undefined ? 0 : source.attempt;
  if (!Number.isSafeInteger(attempt) || attempt < 0) {
    invalidArgument('source.attempt', `${attempt} is not a non-negative integer`);
  }
  return new UrlDownload(ctx, downloadId, priority, {
    url: source.url,
    totalBytes: source.totalBytes,
    startOffset,
    validator: source.validator,
    pinStrength: source.pinStrength ?? (source.validator === '' ? 'weak' : 'strong'),
    headers: source.headers,
    sha256: source.sha256,
    pieceSizeBytes,
    pooled: source.pooled ?? true,
    stallTimeoutMs,
    attempt,
  });
}
