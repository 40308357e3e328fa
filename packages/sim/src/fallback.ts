/**
 * The fallback after a failed download, as the core decides it (BRIEF interface 1:
 * `download:failed.fallback`). The host only carries the decision out (node-host.ts,
 * `carryOutFallback`); it never decides.
 *
 * TEMPORARY (until the core's `download:failed` carries `fallback`, from the `transfer`
 * branch): `DownloadFallback` is declared here with the core's shape, and `fallbackOf` reads the
 * event's `fallback` when present. When absent it states the core's documented policy
 * (transfer/fallback-policy.ts: origin-changed on a pooled download, first attempt -> repin,
 * later -> origin-only; sha256-mismatch on a pooled download -> origin-only; else none) so the
 * simulator behaves like the daemon meanwhile (the same table as the transfer branch's
 * `fallbackFor`). It compiles unchanged against that branch (there `fallback` is required, so
 * the interim part is never reached); the follow-up after the merge deletes the interim part
 * and imports `DownloadFallback` from the core, so this module becomes `event.fallback`.
 */
import type { CoreEvent, DownloadSource } from '@peapod/core';

export type DownloadFallback =
  | { readonly action: 'none' }
  | { readonly action: 'repin'; readonly reason: string }
  | { readonly action: 'origin-only'; readonly reason: string };

/** A URL source with the attempt count the core reads (BRIEF interface 1). */
export type AttemptedSource = DownloadSource & { readonly attempt?: number };

type DownloadFailed = Extract<CoreEvent, { type: 'download:failed' }>;

/** The core's decision for `event`, a failure of a download started from `source`. */
export function fallbackOf(
  event: DownloadFailed & { readonly fallback?: DownloadFallback },
  source: AttemptedSource | undefined,
): DownloadFallback {
  if (event.fallback !== undefined) return event.fallback;
  if (source?.kind !== 'url' || source.pooled === false) return { action: 'none' };
  const reason = `${event.reason}: ${event.detail}`;
  if (event.reason === 'origin-changed') {
    return (source.attempt ?? 0) === 0
      ? { action: 'repin', reason }
      : { action: 'origin-only', reason };
  }
  if (event.reason === 'sha256-mismatch') return { action: 'origin-only', reason };
  return { action: 'none' };
}
