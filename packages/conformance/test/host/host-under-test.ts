/**
 * The seam between the host compliance suite (suite.ts) and a host: what a host adapter must be
 * able to do to a pod of its nodes, and what it must be able to observe. js-libp2p's
 * interface-compliance-tests idea (STYLE.md section 1): one suite, parameterised by setup
 * (`startPod`) and teardown (`close`), that every host passes.
 *
 * Theory of operation
 * - An adapter starts N nodes in one pod, all able to reach one origin serving one object, with
 *   some nodes misbehaving from the start (`PodSpec`): liars corrupt what they fetch for peers,
 *   stalled nodes find their origin stalls whenever they fetch for a peer.
 * - The suite then acts (a pooled download, a node leaving mid-way, a node shutting down) and
 *   reads what the host reports (`DownloadResult`, `GoodbyeSeen`). Nodes are named by index
 *   everywhere; the adapter maps device IDs and names back to indices.
 * - Adapters use only what a user of that host could use: for the Node host the `peapod` CLI
 *   and its logs, real processes and sockets; for the simulator its scenario API. An adapter
 *   that cannot observe something says so (`undefined`), and the case that needs it says what
 *   it could not check.
 * - Every wait is on an event (a log line, a process exit, a JSON answer, the end of a virtual
 *   run); adapters may bound a wait with a guard timeout, which only turns a hang into a failure.
 */

/** What one pod is made of. Node indices are 0-based. */
export interface PodSpec {
  readonly nodes: number;
  /** Nodes that corrupt what they fetch from the origin for peers (their own fetches are honest). */
  readonly liars?: readonly number[];
  /** Nodes whose origin stalls (answers, then sends nothing) whenever they fetch for a peer. */
  readonly stalledForPeers?: readonly number[];
}

/** A node as its own HELLO should present it. */
export interface NodeIdentity {
  /** Device ID, 64 lower-case hex digits. */
  readonly deviceIdHex: string;
  readonly name: string;
}

/** One peer as a node knows it (from that peer's HELLO). */
export interface PeerView {
  readonly deviceIdHex: string;
  readonly name: string;
  readonly connected: boolean;
  /** The protocol version the link runs at; undefined where the host does not report it. */
  readonly protocolVersion: number | undefined;
}

export interface DownloadOptions {
  /** This node leaves (its process dies, no GOODBYE) once the download is under way. */
  readonly leaver?: number;
}

/** A finished (or failed) pooled download, as the host reports it. */
export interface DownloadResult {
  readonly ok: boolean;
  /** Why it failed, when it did. */
  readonly error: string | undefined;
  /** Bytes in the output. */
  readonly bytes: number | undefined;
  /** SHA-256 of the output (hex), as read back or checked by the host. */
  readonly sha256: string | undefined;
  /** The object's size and SHA-256 at the origin. */
  readonly objectBytes: number;
  readonly objectSha256: string;
  /**
   * Bytes each node contributed, by node index (the requester's own origin fetches under its
   * own index, where the host reports them). Hosts differ in what they count; see each adapter.
   */
  readonly bySource: ReadonlyMap<number, number>;
  /** Bans seen by the end of the download: `by` banned `node`. */
  readonly bans: ReadonlyArray<{ readonly by: number; readonly node: number }>;
  /**
   * Origin fetches each helper started for peers, by node index; undefined where the host does
   * not let one see them.
   */
  readonly fetchesForPeers: ReadonlyMap<number, number> | undefined;
}

/** How one node saw the link to a node that stopped end. */
export interface GoodbyeSeen {
  /** The node that saw it. */
  readonly by: number;
  /** The reason code (`ReasonCode` of @peapod/core) it reported. */
  readonly reason: number;
  /** True when the remote ended the link (a GOODBYE), false when this side did. */
  readonly byRemote: boolean | undefined;
  readonly detail: string;
}

/** A running pod. */
export interface PodUnderTest {
  /** Node `index` as its HELLO should present it. */
  identity(index: number): NodeIdentity;
  /** Resolves once every node holds a ready link to every other node; idempotent. */
  linksUp(): Promise<void>;
  /** The peers node `index` knows, after `linksUp`. */
  peers(index: number): Promise<readonly PeerView[]>;
  /** A pooled URL download of the pod's origin object on node `requester`. */
  download(requester: number, options?: DownloadOptions): Promise<DownloadResult>;
  /** Resolves once node `by` has banned node `node` (after a download with a liar). */
  banned(by: number, node: number): Promise<void>;
  /** Shuts node `index` down (an orderly stop); how every other node saw its link end. */
  stopNode(index: number): Promise<readonly GoodbyeSeen[]>;
  /** Stops every node and the origin; frees everything. */
  close(): Promise<void>;
}

/** A host the suite runs against. */
export interface HostUnderTest {
  /** Shown in the suite's name. */
  readonly name: string;
  startPod(spec: PodSpec): Promise<PodUnderTest>;
}
