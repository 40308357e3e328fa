/**
 * The tracker's limits and defaults, in one table the server, the validators, the docs and the
 * tests read. Why these numbers:
 *   - 16 KiB of body holds the largest peer record (1,249 bytes, 1,668 in base64) many times
 *     over and 200 content IDs (67 bytes each in JSON); nothing legitimate needs more, and a
 *     small ceiling keeps a flood of large bodies cheap to refuse (nginx's default
 *     client_body_buffer_size is 16 KiB for the same reason).
 *   - +-30 s is the clock window of every signed thing in PeaPod (gossip, records).
 *   - The TTL is the 1 hour for bootstrap nodes; cluster nodes heartbeat, so theirs is
 *     short: a node that stops heartbeating leaves chunk-location answers within 2 minutes.
 */
export const TrackerLimits = {
  bodyBytesMax: 16 * 1024,
  clockWindowMs: 30_000,
  discoverDefault: 20,
  discoverMax: 50,
  nodesDefault: 100,
  nodesMax: 200,
  heartbeatContentIdsMax: 200,
  locationsContentIdsMax: 64,
  /** Device IDs listed per content in a chunk-location answer. */
  locationsHoldersMax: 32,
} as const;

export const TrackerDefaults = {
  ttlMs: 60 * 60 * 1000,
  nodeTtlMs: 2 * 60 * 1000,
  purgeIntervalMs: 60_000,
  /** Per source address: every endpoint. */
  addressRatePerSecond: 20,
  addressBurst: 40,
  /** Per device key: the endpoints that name one (registrations and signed requests). */
  keyRatePerSecond: 1,
  keyBurst: 10,
  /** Open connections at once (`server.maxConnections`): past it new ones are dropped. */
  maxConnections: 10_000,
  /** Most buckets kept per limiter; beyond it the oldest are forgotten. */
  bucketsMax: 100_000,
} as const;
