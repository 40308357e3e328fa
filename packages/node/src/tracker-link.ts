/**
 * One tracker, as the daemon uses it (docs/tracker.md has the API; @peapod/tracker's client
 * speaks it): find bootstrap peers there, learn the address the tracker sees this device at,
 * and, when this device broadcasts, register as a bootstrap node and keep the registration alive.
 *
 * Theory of operation
 * - One loop of rounds, each run by one timer. A round: `discover` (its signed records go to
 *   `onRecords`, which feeds them to the core as `gossip-records` with source 'tracker'; its
 *   `observedAddress` to `onObservedAddress`), then, when `ownRecord()` gives a record (only a
 *   broadcasting device has one), `register` with it. The next round comes at half the
 *   registration's remaining lifetime (the tracker's TTL, 1 hour by default), or after
 *   `discoverIntervalMs` for a silent device; sooner while the tracker has named no peer yet
 *   (a first device waits for a second), and at once after `refresh()` (this device's record
 *   changed).
 * - A tracker that is down, times out or answers 4xx/5xx never stops the daemon: the round is
 *   retried with backoff (1 s doubling to 5 minutes). The log gets one line per change of
 *   state (reachable / unreachable, with the reason), not one per attempt.
 * - `stop()` ends the loop and, when registered, unregisters (bounded by the client's timeout),
 *   so the tracker stops handing out an address that no longer answers.
 * The record is signed by the device key (the daemon's signer), so the tracker can check that
 * only this device registers or removes itself; the tracker hands it on verbatim.
 */
import type { TrackerClient } from '@peapod/tracker';
import type { Logger } from 'pino';

/** First retry after a failure, and the longest wait between two rounds when failing. */
export const TRACKER_BACKOFF_MIN_MS = 1_000;
export const TRACKER_BACKOFF_MAX_MS = 5 * 60_000;
/** How often a silent device asks a tracker again. */
export const TRACKER_DISCOVER_INTERVAL_MS = 5 * 60_000;

export type TrackerState = 'starting' | 'reachable' | 'unreachable';

/** What `peapod peers` shows of a tracker. */
export interface TrackerStatus {
  readonly url: string;
  readonly state: TrackerState;
  /** Why it is unreachable (a sentence), when it is. */
  readonly detail: string | undefined;
  /** When this device's registration there expires (Unix ms), while registered. */
  readonly registeredUntil: string | undefined;
  /** Records the last discover answer held. */
  readonly recordsLast: number;
}

export interface TrackerLinkOptions {
  readonly client: Pick<TrackerClient, 'baseUrl' | 'discover' | 'register' | 'unregister'>;
  /** This device's signed record to register, or undefined when it does not broadcast. */
  readonly ownRecord: () => Uint8Array | undefined;
  readonly onRecords: (records: Uint8Array[]) => void;
  readonly onObservedAddress: (address: string) => void;
  readonly logger: Logger;
  /** Wall clock (Unix ms); default Date.now. */
  readonly now?: () => number;
  readonly discoverIntervalMs?: number;
}

export class TrackerLink {
  private state: TrackerState = 'starting';
  private detail: string | undefined;
  private registeredUntilMs: number | undefined;
  private recordsLast = 0;
  /** Consecutive failed rounds (the backoff's exponent), and rounds that found nobody. */
  private failures = 0;
  private emptyRounds = 0;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: TrackerLinkOptions) {
    this.now = options.now ?? Date.now;
  }

  get url(): string {
    return this.options.client.baseUrl;
  }

  status(): TrackerStatus {
    return {
      url: this.url,
      state: this.state,
      detail: this.detail,
      registeredUntil:
        this.registeredUntilMs === undefined
          ? undefined
          : new Date(this.registeredUntilMs).toISOString(),
      recordsLast: this.recordsLast,
    };
  }

  /** Starts the first round now. */
  start(): void {
    this.schedule(0);
  }

  /** This device's record changed (an address learnt, broadcast toggled): a round now. */
  refresh(): void {
    if (this.stopped) return;
    if (this.round === undefined) this.schedule(0);
    else void this.round.then(() => this.schedule(0));
  }

  /** Ends the loop; unregisters when registered. Never throws. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
    if (this.registeredUntilMs === undefined) return;
    this.registeredUntilMs = undefined;
    try {
      await this.options.client.unregister();
      this.options.logger.info({ tracker: this.url }, 'unregistered from the tracker');
    } catch (error) {
      this.options.logger.warn(
        { tracker: this.url, error: trackerProblem(error) },
        'could not unregister from the tracker; its registration expires by itself',
      );
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.round = this.runRound().finally(() => (this.round = undefined));
    }, delayMs);
    this.timer.unref();
  }

  private async runRound(): Promise<void> {
    const { client, logger } = this.options;
    let nextMs: number;
    try {
      const found = await client.discover();
      if (this.stopped) return;
      this.options.onObservedAddress(found.observedAddress);
      this.recordsLast = found.records.length;
      if (found.records.length > 0) this.options.onRecords(found.records);
      const record = this.options.ownRecord();
      if (record !== undefined) {
        const registered = await client.register(record);
        this.registeredUntilMs = registered.expiresAtMs; // a waiting stop() unregisters it
        if (this.stopped) return;
        this.options.onObservedAddress(registered.observedAddress);
      } else {
        this.registeredUntilMs = undefined;
      }
      this.failures = 0;
      this.changeState('reachable', undefined);
      // The own record is in the answer once registered: "nobody" means no other record.
      const others = found.records.length - (record === undefined ? 0 : 1);
      this.emptyRounds = others > 0 ? 0 : this.emptyRounds + 1;
      nextMs =
        this.registeredUntilMs === undefined
          ? (this.options.discoverIntervalMs ?? TRACKER_DISCOVER_INTERVAL_MS)
          : Math.max(TRACKER_BACKOFF_MIN_MS, (this.registeredUntilMs - this.now()) / 2);
      if (this.emptyRounds > 0) nextMs = Math.min(nextMs, backoffMs(this.emptyRounds));
    } catch (error) {
      if (this.stopped) return;
      this.failures += 1;
      this.changeState('unreachable', trackerProblem(error));
      nextMs = backoffMs(this.failures);
      logger.debug({ tracker: this.url, retryInMs: nextMs }, 'tracker round failed');
    }
    this.schedule(nextMs);
  }

  private changeState(state: TrackerState, detail: string | undefined): void {
    const changed = state !== this.state;
    this.state = state;
    this.detail = detail;
    if (!changed) return;
    const { logger } = this.options;
    if (state === 'reachable') logger.info({ tracker: this.url }, 'tracker reachable');
    else
      logger.warn(
        { tracker: this.url, error: detail },
        'tracker unreachable; retrying with backoff (the daemon and its gossip keep running)',
      );
  }
}

/** The wait before round `attempt` (1-based) of a failing or empty streak. */
export function backoffMs(attempt: number): number {
  return Math.min(TRACKER_BACKOFF_MAX_MS, TRACKER_BACKOFF_MIN_MS * 2 ** Math.min(20, attempt - 1));
}

/** A tracker failure as a clause for logs and `peapod peers`. */
export function trackerProblem(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // TrackerError (compared by name: a bundle may hold two copies): status 0 had no answer.
  const status = (error as Error & { status?: unknown }).status;
  if (error.name === 'TrackerError' && typeof status === 'number' && status > 0) {
    return `it answered HTTP ${status}: ${error.message}`;
  }
  const code = ((error as Error & { cause?: unknown }).cause as { code?: unknown } | undefined)
    ?.code;
  return typeof code === 'string' ? `${error.message} (${code})` : error.message;
}
