/** @peapod/tracker: the bootstrap tracker and control plane (server and client). */
export { TrackerClient, TrackerError } from './client.js';
export type { TrackerClientOptions, TrackerNode, TrackerSigner } from './client.js';
export {
  createTracker,
  type Tracker,
  type TrackerLogger,
  type TrackerOptions,
  type TrackerRateLimits,
} from './tracker-server.js';
export { TrackerDefaults, TrackerLimits } from './limits.js';
export { REFUSAL_STATUS, type RefusalCode } from './refusal.js';
export { SIGNATURE_HEADER, SIGNED_REQUEST_DOMAIN, signedRequestMessage } from './signed-request.js';
export { openStore, type TrackerStore } from './store.js';
export { SqliteStore } from './sqlite-store.js';
export { PostgresStore, type PostgresStoreOptions } from './postgres-store.js';
export { parseDuration } from './duration.js';
