/**
 * The link port: everything a transfer module may do with a peer link, and nothing more
 * (DESIGN.md decision 15). Transfers send a message (its lane chosen by its type in
 * link-lanes.ts, the same function the Core's `send-message` input uses), stream DATA for a
 * request, drop what is still queued for a request, ask whether it is, list the ready links, and
 * read a peer snapshot. No transfer module sees a `PeerLink`: a link may then be a TCP stream, a
 * data channel or a simulated pipe without the transfers knowing.
 *
 * The Core implements `LinkDirectory` over its link table (core.ts); the engine turns it into
 * the `LinkPort` the modules get (`TransferContext.links`): only links the engine saw become
 * ready count as ready, and the snapshot gains `throughputBps`, the engine's estimate of the
 * DATA the link delivers (`ThroughputMeter`).
 */
import type { LinkTrust } from '../peer-link.js';
import type { ReasonCode } from '../wire/reason-codes.js';
import type { WireMessage } from '../wire/messages.js';

/** What the Core knows about a ready link's peer. */
export interface LinkPeer {
  readonly deviceId: Uint8Array;
  readonly deviceIdHex: string;
  readonly deviceName: string;
  /** HELLO capability bits (`Capability`). */
  readonly capabilities: number;
  /** Last measured round trip; undefined before the first heartbeat answer. */
  readonly rttMs: number | undefined;
  readonly direction: 'outbound' | 'inbound';
  /** 'pod' (XXpsk3) or 'stranger' (XX): what the link may carry (docs/protocol.md 3.1). */
  readonly trust: LinkTrust;
}

/** A peer snapshot as transfers see it. */
export interface PeerView extends LinkPeer {
  /** Bytes per second of DATA received from this link (an EWMA; 0 until measured). */
  readonly throughputBps: number;
}

/** Dropping a request's queued frames (after a CANCEL). */
export interface DropResult {
  /** Whether anything (DATA or the terminal STATUS) was still queued. */
  readonly dropped: boolean;
  /** How far the request's DATA was already cut into frames (its `baseOffset` + bytes sent). */
  readonly sentBytes: number;
}

/** What transfer modules may do with links. Calls for a link that is not ready do nothing. */
export interface LinkPort {
  /** Queues a message in the lane its type calls for. False when the link is not ready. */
  send(linkId: number, message: WireMessage): boolean;
  /**
   * Queues `bytes` as DATA of `requestId` from `baseOffset`. The bytes are not copied: the
   * caller must not modify them until they are sent.
   */
  stream(linkId: number, requestId: number, bytes: Uint8Array, baseOffset: number): void;
  /** Drops the request's unsent DATA and its queued STATUS. */
  drop(linkId: number, requestId: number): DropResult;
  /** Whether DATA or a STATUS of the request is still queued. */
  isQueued(linkId: number, requestId: number): boolean;
  /** Ready link IDs, ascending. */
  ready(): number[];
  /** The peer of a ready link, or undefined. */
  peer(linkId: number): PeerView | undefined;
}

/** What the engine needs from the Core's link table (core.ts implements it). */
export interface LinkDirectory extends Omit<LinkPort, 'peer'> {
  peer(linkId: number): LinkPeer | undefined;
  close(linkId: number, reason: ReasonCode, detail: string, nowMs: number): void;
}

/** Shortest interval one throughput sample covers (shorter bursts are added up first). */
export const THROUGHPUT_SAMPLE_MS = 250;

/**
 * Per-link throughput of received DATA: bytes are added up until a sample spans at least
 * `THROUGHPUT_SAMPLE_MS` of `nowMs`, then folded into an EWMA (weight 1/4, as the scheduler's
 * per-source estimate). Integer state, driven by input times only (no timer).
 */
export class ThroughputMeter {
  private readonly links = new Map<
    number,
    { sinceMs: number; bytes: number; bytesPerSecond: number }
  >();

  received(linkId: number, byteCount: number, nowMs: number): void {
    let link = this.links.get(linkId);
    if (link === undefined) {
      link = { sinceMs: nowMs, bytes: 0, bytesPerSecond: 0 };
      this.links.set(linkId, link);
    }
    link.bytes += byteCount;
    const elapsedMs = nowMs - link.sinceMs;
    if (elapsedMs < THROUGHPUT_SAMPLE_MS) return;
    const sample = Math.floor((link.bytes * 1000) / elapsedMs);
    link.bytesPerSecond =
      link.bytesPerSecond === 0 ? sample : Math.floor((link.bytesPerSecond * 3 + sample) / 4);
    link.bytes = 0;
    link.sinceMs = nowMs;
  }

  bytesPerSecond(linkId: number): number {
    return this.links.get(linkId)?.bytesPerSecond ?? 0;
  }

  forget(linkId: number): void {
    this.links.delete(linkId);
  }
}
