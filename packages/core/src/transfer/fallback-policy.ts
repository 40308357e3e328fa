/**
 * What a host does after a download failed (DESIGN.md decision 15: protocol policy is a core
 * decision, hosts carry it out and never re-decide). One pure function of the download's source
 * and the failure reason, reported in `download:failed.fallback`:
 *
 * | download                   | reason            | attempt | fallback      |
 * |----------------------------|-------------------|---------|---------------|
 * | URL, pooled                | 'origin-changed'  | 0       | `repin`       |
 * | URL, pooled                | 'origin-changed'  | >= 1    | `origin-only` |
 * | URL, pooled                | 'sha256-mismatch' | any     | `origin-only` |
 * | anything else (a content download, a URL download from the origin alone, other reasons) | | | `none` |
 *
 * - `repin`: the object changed under the pin; probe the origin again and start a pooled
 *   download pinned to the new version, with `attempt` one more. Once only: an object that
 *   changes again is not worth pooling.
 * - `origin-only`: discard the output and download the object from the origin alone. Costs
 *   time, never correctness: a lie no spot check caught, or an object that keeps changing.
 * - `none`: report the failure.
 * `attempt` counts the fallbacks already carried out for this object (the URL source's
 * `attempt`, 0 for the first try; the host passes the previous attempt + 1).
 */
import type { DownloadFallback } from './transfer-api.js';

/** What the policy looks at. */
export interface FallbackCase {
  readonly kind: 'content' | 'url';
  /** URL downloads: pod peers may help (the source's `pooled`, default true). */
  readonly pooled: boolean;
  /** Fallbacks already carried out for this object. */
  readonly attempt: number;
  /** The `download:failed` reason. */
  readonly reason: string;
}

export const NO_FALLBACK: DownloadFallback = { action: 'none' };

export function fallbackFor(failure: FallbackCase): DownloadFallback {
  if (failure.kind !== 'url' || !failure.pooled) return NO_FALLBACK;
  if (failure.reason === 'origin-changed') {
    return failure.attempt === 0
      ? { action: 'repin', reason: 'the origin object changed; pooling the new version' }
      : { action: 'origin-only', reason: 'the origin object changed again' };
  }
  if (failure.reason === 'sha256-mismatch') {
    return {
      action: 'origin-only',
      reason: 'the pooled bytes do not match the expected SHA-256',
    };
  }
  return NO_FALLBACK;
}
