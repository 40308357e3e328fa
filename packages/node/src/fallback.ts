/**
 * The core's fallback decision after a failed pooled download (BRIEF interface 1): what the
 * download job carries out (download-job.ts), never re-decided there.
 *
 * Theory of operation: the core's `download:failed` event carries `fallback` (the core's
 * transfer/fallback-policy.ts decides it from the reason and the source's `attempt`);
 * `fallbackOf` returns it. INTERIM, until that field is in this branch's core (it is being
 * added on the `transfer` branch): when the event has none, the same rule as specified is
 * applied here, in this one function, so switching over is deleting the lines after `decided`
 * (and importing `DownloadFallback` from `@peapod/core`).
 */
import type { TransferEvent } from '@peapod/core';

/** As `DownloadFallback` in `@peapod/core` (BRIEF interface 1). */
export type DownloadFallback =
  | { readonly action: 'none' }
  /** Probe again, start pooled pinned to the new version. */
  | { readonly action: 'repin'; readonly reason: string }
  /** Discard the output, download from the origin alone. */
  | { readonly action: 'origin-only'; readonly reason: string };

export type DownloadFailedEvent = Extract<TransferEvent, { type: 'download:failed' }>;

/** What to do after `event`, for a pooled download started with `attempt` (0 the first). */
export function fallbackOf(event: DownloadFailedEvent, attempt: number): DownloadFallback {
  const decided = (event as { readonly fallback?: DownloadFallback }).fallback;
  if (decided !== undefined) return decided;
  // INTERIM (see the module comment): the rule of BRIEF interface 1.
  if (event.reason === 'origin-changed' && attempt === 0) {
    return { action: 'repin', reason: 'the object changed during the pooled download' };
  }
  if (event.reason === 'origin-changed') {
    return { action: 'origin-only', reason: 'it changed a second time' };
  }
  if (event.reason === 'sha256-mismatch') {
    return { action: 'origin-only', reason: 'the pooled bytes failed the SHA-256' };
  }
  return { action: 'none' };
}
