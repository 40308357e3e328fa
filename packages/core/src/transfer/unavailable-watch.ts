/**
 * When a content download gives up (`DownloadSource.stallTimeoutMs`): no newly verified byte
 * for that long *and* something it needs is held by no ready link. Either alone is not enough:
 * a slow swarm still verifies bytes, and a chunk some link announced may yet come (stalled
 * sources are reassigned by the scheduler). So the download waits for good while every missing
 * chunk has a holder, and fails 'unavailable' the moment both hold.
 *
 * The clock: `verified(nowMs)` restarts it (a chunk verified from a peer or read back from the
 * host, the manifest accepted). `deadlineMs()` is the time of the first check, reported only
 * until that check ran, so a timer never spins on a deadline in the past; after it the caller
 * asks again (`due`) whenever availability changed (a link closed, an announce, a remove),
 * which is when the answer can change. Sans-I/O: time comes only from the callers' `nowMs`.
 */

export class UnavailableWatch {
  private lastVerifiedMs: number;
  /** The `lastVerifiedMs` whose check ran, with the availability revision it saw. */
  private checkedFor: number | undefined;
  private checkedRevision = -1;

  constructor(
    readonly timeoutMs: number,
    nowMs: number,
  ) {
    this.lastVerifiedMs = nowMs;
  }

  /** A verified byte: the clock restarts. */
  verified(nowMs: number): void {
    this.lastVerifiedMs = nowMs;
    this.checkedFor = undefined;
  }

  /** When the first check is due, while it has not run. */
  deadlineMs(): number | undefined {
    return this.checkedFor === this.lastVerifiedMs
      ? undefined
      : this.lastVerifiedMs + this.timeoutMs;
  }

  /**
   * Whether the caller should check for missing chunks now: the timeout passed and the check
   * did not run yet at this availability `revision`. Records that it runs.
   */
  due(nowMs: number, revision: number): boolean {
    if (nowMs < this.lastVerifiedMs + this.timeoutMs) return false;
    if (this.checkedFor === this.lastVerifiedMs && this.checkedRevision === revision) return false;
    this.checkedFor = this.lastVerifiedMs;
    this.checkedRevision = revision;
    return true;
  }
}

/** A size as a person reads it: `512 B`, `64.0 KiB`, `48.0 MiB`, `1.5 GiB`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** The detail of 'unavailable' when chunks are missing. */
export function missingChunksDetail(missing: number, total: number, missingBytes: number): string {
  const chunks = total === 1 ? 'chunk' : 'chunks';
  const verb = missing === 1 ? 'is' : 'are';
  return (
    `${missing} of ${total} ${chunks} (${formatSize(missingBytes)}) ${verb} held by no ` +
    'connected pod member; connect a device that has them and fetch again'
  );
}

/** The detail of 'unavailable' when the manifest is unknown and nobody announced the content. */
export function noHolderDetail(contentIdHex: string): string {
  return (
    `no connected pod member holds content ${contentIdHex.slice(0, 12)}…; ` +
    'connect a device that has it and fetch again'
  );
}
