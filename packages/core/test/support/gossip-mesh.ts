/**
 * Gossip engines wired together in memory, for the engine's tests.
 *
 * Each node is a real GossipEngine with its own Ed25519 identity and real signatures. A link is
 * a pair of link IDs (one per side); `connect` reports it up on both sides, and every `send` an
 * engine outputs is queued and delivered, in order, to the other side's `receive`. `dial`
 * outputs connect to the node with that Device ID when `autoDial` is on; a `close` output takes
 * the link down on both sides once the frames sent before it are delivered. One virtual clock
 * drives every engine (`nowMs`); each node's wall clock is `WALL_BASE_MS + nowMs + wallOffsetMs`
 * (tests skew it). No sleeps: `settle` delivers
 * until nothing is queued; `advance` moves the clock, firing each engine's deadline on the way.
 *
 * Crypto: the core's noble provider with seeded randomness (deterministic-crypto.ts), except
 * that Ed25519 signs and verifies through node:crypto (the same algorithm, RFC 8032, so the
 * same bytes; about 40x faster than noble here), so a 50-engine mesh runs in seconds.
 * `tap` sees (and may replace or drop) every frame before delivery.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { toHex } from '../../src/bytes.js';
import type { CryptoProvider, KeyPair } from '../../src/crypto-provider.js';
import {
  GossipEngine,
  type GossipEvent,
  type GossipSelf,
  type GossipSettings,
} from '../../src/gossip/gossip-engine.js';
import { deriveDeviceId } from '../../src/identity.js';
import { Prng } from '../../src/prng.js';
import type { GossipFrameMessage } from '../../src/wire/messages.js';
import { deterministicCrypto } from './deterministic-crypto.js';

export const WALL_BASE_MS = 1_800_000_000_000;

const PKCS8_ED25519 = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
const SPKI_ED25519 = Uint8Array.from([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
]);
const privateKeys = new Map<string, KeyObject>();
const publicKeys = new Map<string, KeyObject>();

function privateKey(secret: Uint8Array): KeyObject {
  const hex = toHex(secret);
  let key = privateKeys.get(hex);
  if (key === undefined) {
    key = createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519, secret]),
      format: 'der',
      type: 'pkcs8',
    });
    privateKeys.set(hex, key);
  }
  return key;
}

function publicKey(raw: Uint8Array): KeyObject {
  const hex = toHex(raw);
  let key = publicKeys.get(hex);
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
    if (publicKeys.size > 10_000) publicKeys.clear();
    publicKeys.set(hex, key);
  }
  return key;
}

/** Seeded, real crypto with node:crypto's Ed25519. */
export function gossipCrypto(seed: number): CryptoProvider {
  const base = deterministicCrypto(seed);
  return {
    ...base,
    ed25519Sign: (secret, message) => new Uint8Array(sign(null, message, privateKey(secret))),
    ed25519Verify(raw, message, signature) {
      if (raw.length !== 32 || signature.length !== 64) return false;
      try {
        return verify(null, message, publicKey(raw), signature);
      } catch {
        return false;
      }
    },
  };
}

export interface MeshNodeOptions {
  readonly broadcast?: boolean;
  readonly settings?: Partial<GossipSettings>;
  /** Hosts in the node's self (a silent node's must never appear anywhere). */
  readonly addresses?: readonly string[];
}

export interface MeshNode {
  readonly index: number;
  readonly engine: GossipEngine;
  readonly crypto: CryptoProvider;
  readonly identity: KeyPair;
  readonly deviceId: Uint8Array;
  readonly self: GossipSelf;
  /** linkId -> the other side (node index, its link ID). */
  readonly links: Map<number, { readonly peer: number; readonly peerLinkId: number }>;
  readonly events: GossipEvent[];
  readonly dials: { deviceId: Uint8Array; address: string; port: number }[];
  wallOffsetMs: number;
}

export interface Delivery {
  readonly from: number;
  readonly to: number;
  readonly linkId: number;
  readonly frame: GossipFrameMessage;
}

/** A queued frame, or a close queued behind the frames sent before it (TCP's FIN after data). */
type Queued = Delivery | { readonly close: true; readonly node: number; readonly linkId: number };

export class GossipMesh {
  nowMs = 0;
  readonly nodes: MeshNode[] = [];
  /** Connect `dial` outputs to the node they name (default true). */
  autoDial = true;
  /** Sees each frame before delivery: return the frames to deliver instead (empty: drop). */
  tap: ((delivery: Delivery) => readonly GossipFrameMessage[] | undefined) | undefined = undefined;
  delivered = 0;
  private readonly queue: Queued[] = [];
  private nextLinkId = 1;

  constructor(readonly seed: number) {}

  add(options: MeshNodeOptions = {}): MeshNode {
    const index = this.nodes.length;
    const crypto = gossipCrypto(this.seed * 100_003 + index);
    const identity = crypto.ed25519GenerateKeyPair();
    const broadcast = options.broadcast ?? true;
    const self: GossipSelf = {
      broadcast,
      bootstrap: false,
      addresses: options.addresses ?? [`10.${index >> 8}.${index & 255}.1`],
      listenPort: 9000,
      deviceName: `node-${index}`,
      capabilities: 0,
    };
    const engine = new GossipEngine({
      crypto,
      identity,
      prng: new Prng(this.seed * 7919 + index),
      self,
      ...(options.settings === undefined ? {} : { settings: options.settings }),
    });
    const node: MeshNode = {
      index,
      engine,
      crypto,
      identity,
      deviceId: deriveDeviceId(crypto, identity.publicKey),
      self,
      links: new Map(),
      events: [],
      dials: [],
      wallOffsetMs: 0,
    };
    this.nodes.push(node);
    return node;
  }

  wall(node: number): number {
    return WALL_BASE_MS + this.nowMs + this.nodes[node]!.wallOffsetMs;
  }

  /** Opens a link between `a` and `b` (up on both sides) and drains both. */
  connect(a: number, b: number): { readonly aLinkId: number; readonly bLinkId: number } {
    const aLinkId = this.nextLinkId++;
    const bLinkId = this.nextLinkId++;
    const na = this.nodes[a]!;
    const nb = this.nodes[b]!;
    na.links.set(aLinkId, { peer: b, peerLinkId: bLinkId });
    nb.links.set(bLinkId, { peer: a, peerLinkId: aLinkId });
    na.engine.linkUp(aLinkId, nb.deviceId, this.nowMs, this.wall(a), {
      outbound: true,
      address: nb.self.addresses[0] ?? '',
    });
    this.drain(a);
    nb.engine.linkUp(bLinkId, na.deviceId, this.nowMs, this.wall(b), {
      outbound: false,
      address: na.self.addresses[0] ?? '',
    });
    this.drain(b);
    return { aLinkId, bLinkId };
  }

  /** The link ID node `a` uses for its link to `b`, if linked. */
  linkId(a: number, b: number): number | undefined {
    for (const [linkId, side] of this.nodes[a]!.links) if (side.peer === b) return linkId;
    return undefined;
  }

  /** Takes link `linkId` of node `node` down on both sides. */
  disconnect(node: number, linkId: number): void {
    const side = this.nodes[node]!.links.get(linkId);
    if (side === undefined) return;
    this.nodes[node]!.links.delete(linkId);
    this.nodes[side.peer]!.links.delete(side.peerLinkId);
    this.nodes[node]!.engine.linkDown(linkId, this.nowMs);
    this.drain(node);
    this.nodes[side.peer]!.engine.linkDown(side.peerLinkId, this.nowMs);
    this.drain(side.peer);
  }

  /**
   * Node `index` floods a fresh PEER_ANNOUNCEMENT and the mesh settles: how the network beyond
   * its links learns it (a new link gets only a one-hop introduction).
   */
  announce(index: number): void {
    const result = this.nodes[index]!.engine.announce(this.nowMs, this.wall(index));
    if (!result.sent) throw new Error(`node ${index} did not announce: ${result.reason}`);
    this.drain(index);
    this.settle();
  }

  /** Hands `frame` to `node` as if it arrived on `linkId`, then drains. */
  inject(node: number, linkId: number, frame: GossipFrameMessage): void {
    this.nodes[node]!.engine.receive(linkId, frame, this.nowMs, this.wall(node));
    this.drain(node);
  }

  /** Delivers queued frames until none is left (bounded, so a bug cannot loop forever). */
  settle(maxDeliveries = 10_000_000): void {
    let count = 0;
    while (this.queue.length > 0) {
      if (++count > maxDeliveries) throw new Error('gossip mesh: delivery bound exceeded');
      const delivery = this.queue.shift()!;
      if ('close' in delivery) {
        this.disconnect(delivery.node, delivery.linkId);
        continue;
      }
      const target = this.nodes[delivery.to]!;
      if (!target.links.has(delivery.linkId)) continue; // the link went down meanwhile
      this.delivered++;
      target.engine.receive(delivery.linkId, delivery.frame, this.nowMs, this.wall(delivery.to));
      this.drain(delivery.to);
    }
  }

  /** Moves the clock by `ms`, firing every engine's deadlines in time order, settling each. */
  advance(ms: number): void {
    const end = this.nowMs + ms;
    for (;;) {
      let next = end + 1;
      for (const node of this.nodes) {
        const deadline = node.engine.nextDeadlineMs();
        if (deadline !== undefined && deadline < next) next = deadline;
      }
      if (next > end) break;
      this.nowMs = Math.max(this.nowMs, next);
      for (const node of this.nodes) {
        const deadline = node.engine.nextDeadlineMs();
        if (deadline !== undefined && deadline <= this.nowMs) {
          node.engine.timer(this.nowMs, this.wall(node.index));
          this.drain(node.index);
        }
      }
      this.settle();
    }
    this.nowMs = end;
  }

  /** Carries out node `index`'s outputs. */
  drain(index: number): void {
    const node = this.nodes[index]!;
    for (;;) {
      const output = node.engine.takeOutput();
      if (output === undefined) return;
      switch (output.type) {
        case 'send': {
          const side = node.links.get(output.linkId);
          if (side === undefined) break;
          const delivery: Delivery = {
            from: index,
            to: side.peer,
            linkId: side.peerLinkId,
            frame: output.frame,
          };
          const frames = this.tap?.(delivery) ?? [output.frame];
          for (const frame of frames) this.queue.push({ ...delivery, frame });
          break;
        }
        case 'dial': {
          node.dials.push(output);
          if (!this.autoDial) break;
          const target = this.nodes.find((n) => toHex(n.deviceId) === toHex(output.deviceId));
          if (target !== undefined && this.linkId(index, target.index) === undefined)
            this.connect(index, target.index);
          break;
        }
        case 'close':
          this.queue.push({ close: true, node: index, linkId: output.linkId });
          break;
        case 'event':
          node.events.push(output.event);
          break;
        default:
          throw new Error(`unhandled output ${(output as { type: string }).type}`);
      }
    }
  }

  /** Events of `type` node `index` emitted. */
  eventsOf<T extends GossipEvent['type']>(
    index: number,
    type: T,
  ): Extract<GossipEvent, { type: T }>[] {
    return this.nodes[index]!.events.filter(
      (e): e is Extract<GossipEvent, { type: T }> => e.type === type,
    );
  }

  /** Nodes that accepted message `messageId`. */
  reached(messageId: Uint8Array): number[] {
    const hex = toHex(messageId);
    return this.nodes
      .filter((n) =>
        n.events.some((e) => e.type === 'gossip:accepted' && toHex(e.messageId) === hex),
      )
      .map((n) => n.index);
  }
}

/**
 * `n` engines that each know only node 0's record (as a tracker would hand it out) and dial from
 * there; then two minutes of heartbeats, dials and table syncs. Silent nodes get addresses from
 * 192.168.77.0/24 (tests look for them), broadcasting ones from 10.1.0.0/16.
 */
export function bootstrapMesh(
  n: number,
  seed: number,
  silent: (i: number) => boolean = () => false,
): GossipMesh {
  const mesh = new GossipMesh(seed);
  for (let i = 0; i < n; i++) mesh.add({ broadcast: i === 0 || !silent(i) });
  const seedRecord = mesh.nodes[0]!.engine.ownRecord(mesh.wall(0));
  for (let i = 1; i < n; i++) {
    mesh.nodes[i]!.engine.addRecords([seedRecord], 'tracker', mesh.nowMs, mesh.wall(i));
    mesh.drain(i);
    mesh.settle();
  }
  mesh.advance(120_000);
  return mesh;
}
