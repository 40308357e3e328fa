/**
 * The tracker client: what a daemon calls to register, discover and report (docs/tracker.md).
 *
 * SPINE STUB: the tracker stream fills the bodies; the daemon stream codes against this API.
 *
 * Every call that changes state is signed by the device key (`signer`): the body names the
 * device's public key and the wall-clock time, and an Ed25519 signature covers the method, the
 * path and the body, so nobody can register, refresh or remove another device, and a captured
 * request cannot be replayed (the tracker refuses a timestamp outside +-30 s or seen before).
 * Bootstrap registrations carry the device's own signed peer record (core gossip/peer-record.ts,
 * broadcast flag set), which the tracker verifies and hands out verbatim: a tracker cannot
 * invent or move a peer's address either.
 */

/** Signs with the device's Ed25519 key. */
export interface TrackerSigner {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export interface TrackerClientOptions {
  /** Per request; default 10 s. */
  readonly timeoutMs?: number;
  /** Wall clock (Unix ms); default Date.now. */
  readonly now?: () => number;
}

/** A cluster node as the control plane lists it. */
export interface TrackerNode {
  readonly deviceIdHex: string;
  /** Its signed peer record (verifiable by the caller). */
  readonly record: Uint8Array;
  readonly lastHeartbeatMs: number;
  readonly expiresAtMs: number;
}

/** A 4xx/5xx answer: the status and the tracker's sentence. */
export class TrackerError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'TrackerError';
  }
}

export class TrackerClient {
  constructor(
    readonly baseUrl: string,
    readonly signer: TrackerSigner,
    readonly options: TrackerClientOptions = {},
  ) {}

  /** The bootstrap nodes the tracker holds (signed records) and the address it sees us at. */
  async discover(limit?: number): Promise<{ records: Uint8Array[]; observedAddress: string }> {
    void limit;
    throw new Error('spine stub: TrackerClient.discover');
  }

  /** Registers (or refreshes) this device as a bootstrap node; `record` must broadcast. */
  async register(record: Uint8Array): Promise<{ expiresAtMs: number; observedAddress: string }> {
    void record;
    throw new Error('spine stub: TrackerClient.register');
  }

  /** Removes this device's bootstrap registration. */
  async unregister(): Promise<void> {
    throw new Error('spine stub: TrackerClient.unregister');
  }

  /** Control plane: register (or refresh) a cluster node with its signed record. */
  async registerNode(record: Uint8Array): Promise<{ expiresAtMs: number }> {
    void record;
    throw new Error('spine stub: TrackerClient.registerNode');
  }

  /** Control plane: heartbeat, with the contents this node holds (replaces the last list). */
  async heartbeat(contentIds: readonly Uint8Array[]): Promise<{ expiresAtMs: number }> {
    void contentIds;
    throw new Error('spine stub: TrackerClient.heartbeat');
  }

  /** Control plane: live cluster nodes. */
  async nodes(): Promise<TrackerNode[]> {
    throw new Error('spine stub: TrackerClient.nodes');
  }

  /** Control plane: which live nodes hold each content (hex content ID -> hex Device IDs). */
  async chunkLocations(contentIds: readonly Uint8Array[]): Promise<Map<string, string[]>> {
    void contentIds;
    throw new Error('spine stub: TrackerClient.chunkLocations');
  }
}
