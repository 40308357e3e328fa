/**
 * A real tracker on loopback over a real backend, with a clock the test drives (`clock.ms`):
 * expiry is tested by moving the clock, never by sleeping. Rate limits are off unless a test
 * asks for them (every request here comes from one address).
 */
import {
  createTracker,
  type Tracker,
  type TrackerOptions,
  type TrackerRateLimits,
} from '../../src/tracker-server.js';
import type { Backend } from './backends.js';

export interface TestClock {
  ms: number;
}

export interface RunningTracker {
  readonly tracker: Tracker;
  readonly url: string;
  readonly clock: TestClock;
}

export const UNLIMITED: TrackerRateLimits = {
  addressRatePerSecond: 0,
  addressBurst: 1,
  keyRatePerSecond: 0,
  keyBurst: 1,
};

export async function startTracker(
  backend: Backend,
  options: {
    clock?: TestClock;
    rateLimits?: TrackerRateLimits;
    ttlMs?: number;
    nodeTtlMs?: number;
    /** trustProxy, clusterToken, maxConnections. */
    server?: Pick<TrackerOptions, 'trustProxy' | 'clusterToken' | 'maxConnections'>;
  } = {},
): Promise<RunningTracker> {
  const clock = options.clock ?? { ms: Date.now() };
  const tracker = createTracker({
    store: backend.newStore(),
    now: () => clock.ms,
    rateLimits: options.rateLimits ?? UNLIMITED,
    purgeIntervalMs: 0,
    ...options.server,
    ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
    ...(options.nodeTtlMs === undefined ? {} : { nodeTtlMs: options.nodeTtlMs }),
  });
  const url = await tracker.listen(0, '127.0.0.1');
  return { tracker, url, clock };
}
