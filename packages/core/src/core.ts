/**
 * The Core: pea-core's one entry point, a sans-I/O state machine (docs/architecture.md).
 *
 * Contract (str0m's rule, written once and followed by every host and the simulator):
 *   1. Feed every fact or command with `handle(input)`; every input carries `nowMs`, a monotonic
 *      clock reading in milliseconds that never goes backwards.
 *   2. After every `handle`, call `poll()` until it returns `undefined`, carrying out each output.
 *   3. Arm one timer for `nextDeadlineMs()`; when it fires, `handle({ type: 'timer-fired', nowMs })`.
 * The Core owns no sockets, files, clocks or global randomness: the host supplies bytes and time,
 * the crypto provider supplies cryptography, and one seeded PRNG (`Prng`) supplies every chance
 * decision, so a run replays from its seed.
 *
 * The Core runs peer links (handshake, HELLO, heartbeats, GOODBYE) and routes transfer
 * messages (CHUNK_REQUEST, DATA, STATUS, CANCEL, CHUNK_ANNOUNCE/REMOVE, FETCH_ASSIGN) and the
 * transfer inputs of transfer-api.ts to the `TransferEngine` (downloads, serving, the
 * scheduler); RPC frames still go up as `peer:message` events.
 *
 * Strangers and gossip (`CoreOptions.gossip`, docs/protocol.md 3.1). A link's trust is the
 * suite its handshake used: XXpsk3 'pod', XX 'stranger'. With gossip on, the responder accepts
 * both families (XX alone without a pod secret: a stranger-only node); an outbound link offers
 * the family its dial asked for (`connect.trust`, remembered by dial ID). A stranger link may
 * carry gossip and content by ID only: FETCH_ASSIGN is refused with STATUS, URL_QUERY /
 * URL_ANSWER and RPC frames are dropped (RPC_REQUEST answered RPC_ERROR), each counted in
 * `strangerRefusals`; announcements follow the transfer engine's stranger rules. The one
 * `GossipEngine` sees every ready link whose remote advertises `Capability.gossip` (`linkUp` /
 * `linkDown`), gets their gossip frames with the input's wall clock, and its outputs become
 * link sends, `connect`s (stranger dials through the peer table) and closes. Work that needs
 * the wall clock when the input lacked one (a link ready on bytes without `wallClockMs`, a
 * content download's PEER_REQUEST) waits for the next input carrying it: the deadline is then
 * "now", so the host's `timer-fired` brings it at once.
 */
import { PeapodError, invalidArgument } from './errors.js';
import type { AeadCipher, CryptoProvider, KeyPair } from './crypto-provider.js';
import { Prng } from './prng.js';
import {
  PeerLink,
  suiteFor,
  type LinkConfig,
  type LinkFraming,
  type LinkTrust,
  type RemotePeer,
} from './peer-link.js';
import { ReasonCode } from './wire/reason-codes.js';
import {
  PeerTable,
  duplicateToClose,
  type DialOrder,
  type PeerSnapshot,
  type PeerSource,
} from './peer-table.js';
import { toHex } from './bytes.js';
import { deriveDeviceId } from './identity.js';
import { TransferEngine, TRANSFER_MESSAGE_TYPES } from './transfer/transfer-engine.js';
import type { LinkDirectory } from './transfer/link-port.js';
import { sendOnLane } from './link-lanes.js';
import type { TransferEvent, TransferInput, TransferOutput } from './transfer/transfer-api.js';
import {
  GossipEngine,
  type GossipEvent,
  type GossipSelf,
  type GossipSettings,
} from './gossip/gossip-engine.js';
import {
  checkAddress,
  checkDeviceId,
  checkOptionalWallClock,
  checkPort,
  checkRecords,
  checkSelf,
  checkWallClock,
} from './gossip-input-checks.js';
import { PublishedContents } from './stranger-content.js';
import {
  Capability,
  TransferStatus,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  type WireMessage,
} from './wire/messages.js';

export interface CoreOptions {
  readonly crypto: CryptoProvider;
  /** This device's Ed25519 key pair (its Device ID is derived from the public key). */
  readonly identity: KeyPair;
  /** Seed of the core's PRNG. Hosts pass a random seed; tests and the simulator a fixed one. */
  readonly seed: number;
  /**
   * The pod or cluster secret (32 bytes). When set, pod links run XXpsk3 (trust 'pod'); without
   * `gossip`, only those are offered or accepted.
   */
  readonly podSecret?: Uint8Array;
  /** AEAD for links this side initiates. Default 'ChaChaPoly'. */
  readonly cipher?: AeadCipher;
  readonly deviceName?: string;
  /** TCP port this device accepts links on (sent in HELLO); 0 when it accepts none. */
  readonly listenPort?: number;
  readonly capabilities?: number;
  /** Policy hook: return false to refuse a remote device after it proved its identity. */
  readonly acceptRemote?: (deviceId: Uint8Array) => boolean;
  readonly handshakeTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly idleTimeoutMs?: number;
  /** Bytes of DATA a link may hand the host before the host reports them flushed. */
  readonly sendWindowBytes?: number;
  /** Protocol versions to offer in HELLO (tests of negotiation only). */
  readonly versionRange?: { readonly min: number; readonly max: number };
  /** Bytes past a download's delivery point it may have assigned or buffered. */
  readonly reorderWindowBytes?: number;
  /** Default piece size of URL downloads. */
  readonly pieceSizeBytes?: number;
  /** Chunk requests (or origin fetches) one link may have this device serve at once. */
  readonly servingPerLinkMax?: number;
  /** Least time without progress before a source counts as stalled. */
  readonly stallFloorMs?: number;
  /** Integrity strikes that ban a peer. */
  readonly banThreshold?: number;
  /** Least time between two `download:progress` events of one download. */
  readonly progressIntervalMs?: number;
  /**
   * Default true: the core runs transfers (serving, downloads) and consumes transfer messages.
   * false: transfer messages go up as `peer:message` events like RPC (link-level tests, raw
   * protocol tools); transfer inputs are then still accepted but no peer is served.
   */
  readonly handleTransfers?: boolean;
  /**
   * Gossip beyond the pod (DESIGN.md decisions 5 and 8). When set, the core also accepts and
   * dials links to strangers (Noise XX without psk: trust 'stranger'), advertises the gossip
   * capability, and runs the gossip engine (gossip/gossip-engine.ts) on every ready link whose
   * remote advertises it. A stranger link carries gossip and content by ID (every chunk checked
   * against its content ID) and nothing that needs trust (FETCH_ASSIGN, URL lookups, RPC).
   */
  readonly gossip?: {
    readonly self: GossipSelf;
    readonly settings?: Partial<GossipSettings>;
  };
  /**
   * TEST ONLY fault injection, for tests that need a lying peer made of real parts:
   * `corruptServedChunks` flips one byte of every chunk this device serves, after its own check
   * of the stored copy (so the requester's verification is what catches it). Never set it
   * outside a test.
   */
  readonly testFaults?: { readonly corruptServedChunks?: boolean };
}

/** Defaults, with their reasons. */
export const CoreDefaults = {
  /** A LAN handshake takes a few ms; 10 s also covers a busy Wi-Fi link. */
  handshakeTimeoutMs: 10_000,
  /** Ping an idle link every 15 s ... */
  heartbeatIntervalMs: 15_000,
  /** ... and drop it after 3 missed intervals (like TCP keep-alive probes, but authenticated). */
  idleTimeoutMs: 45_000,
  /** 256 KiB: ~2 ms of data at 1 Gbit/s, so a control frame waits at most that long. */
  sendWindowBytes: 256 * 1024,
  /**
   * 64 MiB: sixteen 4 MiB pieces, two in flight at each of eight pooled sources, while memory
   * stays independent of the object's size.
   */
  reorderWindowBytes: 64 * 1024 * 1024,
  /** 4 MiB, the default chunk size (docs/content.md section 3): ~0.7 s at 50 Mbit/s. */
  pieceSizeBytes: 4 * 1024 * 1024,
  /** Enough to keep a requester's pipeline (2-8) full; beyond it the answer is `busy`. */
  servingPerLinkMax: 16,
  /** A helper's origin may take seconds for its first byte. */
  stallFloorMs: 5_000,
  /** docs/protocol.md 7.2: ban after repeated failures. */
  banThreshold: 3,
  /** Four progress events a second are plenty for a progress bar. */
  progressIntervalMs: 250,
} as const;

/** Inputs: facts the host observed and commands it was given. All carry `nowMs`. */
export type CoreInput =
  | {
      readonly type: 'link-opened';
      readonly nowMs: number;
      readonly linkId: number;
      readonly direction: 'outbound' | 'inbound';
      readonly remoteAddress: string;
      /** The `connect` output this outbound link was opened for, if any. */
      readonly dialId?: number;
      /**
       * How records travel (peer-link.ts): 'stream' (the default, for TCP), a byte stream with a
       * length before each record; 'message' (data channels, WebSockets), each `bytes-received`
       * exactly one record as the remote sent it and each `send` output exactly one record, to
       * go out as one message.
       */
      readonly framing?: LinkFraming;
    }
  /**
   * The host learnt of a pod peer (a LAN beacon, the peers cache, an address the user gave):
   * the peer table (peer-table.ts) decides whether to dial it (`connect`).
   */
  | {
      readonly type: 'peer-discovered';
      readonly nowMs: number;
      readonly deviceId: Uint8Array;
      readonly address: string;
      readonly port: number;
      readonly source: PeerSource;
    }
  /** The transport of a `connect` could not be opened (refused, unreachable, timed out). */
  | {
      readonly type: 'dial-failed';
      readonly nowMs: number;
      readonly dialId: number;
      readonly detail: string;
    }
  | {
      readonly type: 'bytes-received';
      readonly nowMs: number;
      readonly linkId: number;
      readonly bytes: Uint8Array;
      /**
       * The host's wall clock (Unix ms) when the bytes arrived: gossip timestamps are checked
       * against it (+-30 s). Its own field, never derived from or mixed with `nowMs`. Without
       * it, gossip frames in these bytes are rejected as 'stale'.
       */
      readonly wallClockMs?: number;
    }
  | {
      readonly type: 'bytes-flushed';
      readonly nowMs: number;
      readonly linkId: number;
      readonly byteCount: number;
    }
  | { readonly type: 'link-closed'; readonly nowMs: number; readonly linkId: number }
  | { readonly type: 'timer-fired'; readonly nowMs: number; readonly wallClockMs?: number }
  /** Signed peer records from outside gossip: the tracker's answer, the persisted table. */
  | {
      readonly type: 'gossip-records';
      readonly nowMs: number;
      readonly wallClockMs: number;
      readonly records: readonly Uint8Array[];
      readonly source: 'tracker' | 'cache';
    }
  /** This device's gossip state changed (broadcast toggled, its public address learnt). */
  | {
      readonly type: 'gossip-self';
      readonly nowMs: number;
      readonly wallClockMs: number;
      readonly self: GossipSelf;
    }
  /** Ask the network for peers (holding `contentId`, when given): PEER_REQUEST. */
  | {
      readonly type: 'find-peers';
      readonly nowMs: number;
      readonly wallClockMs: number;
      readonly contentId?: Uint8Array;
    }
  /**
   * Dial a stranger by address (the user's `--peer HOST:PORT`): a Noise XX link whose remote
   * identity is learnt in the handshake (or checked against `deviceId` when given).
   */
  | {
      readonly type: 'dial-stranger';
      readonly nowMs: number;
      readonly address: string;
      readonly port: number;
      readonly deviceId?: Uint8Array;
    }
  | {
      readonly type: 'close-link';
      readonly nowMs: number;
      readonly linkId: number;
      readonly reason: ReasonCode;
    }
  | {
      readonly type: 'send-message';
      readonly nowMs: number;
      readonly linkId: number;
      readonly message: WireMessage;
    }
  | { readonly type: 'shutdown'; readonly nowMs: number }
  | TransferInput;

/** What the host shows or forwards to users (js-libp2p's `noun:verb` naming). */
export type CoreEvent =
  | {
      readonly type: 'peer:connect';
      readonly linkId: number;
      readonly remoteAddress: string;
      readonly direction: 'outbound' | 'inbound';
      readonly remote: RemotePeer;
    }
  | {
      readonly type: 'peer:disconnect';
      readonly linkId: number;
      readonly deviceId: Uint8Array | undefined;
      readonly reason: ReasonCode;
      readonly detail: string;
      readonly by: 'local' | 'remote';
    }
  | { readonly type: 'peer:rtt'; readonly linkId: number; readonly rttMs: number }
  | { readonly type: 'peer:message'; readonly linkId: number; readonly message: WireMessage }
  | TransferEvent
  | GossipEvent;

/** Instructions for the host. */
export type CoreOutput =
  | { readonly type: 'send'; readonly linkId: number; readonly bytes: Uint8Array }
  | { readonly type: 'disconnect'; readonly linkId: number }
  /**
   * Open a transport to a peer the table decided to dial; report `link-opened` (outbound, with
   * this `dialId`) when it connects, or `dial-failed`.
   */
  | {
      readonly type: 'connect';
      readonly dialId: number;
      /** undefined for a stranger dialled by address alone (`dial-stranger`). */
      readonly deviceId: Uint8Array | undefined;
      readonly address: string;
      readonly port: number;
      /** Which handshake the link will run: 'pod' (XXpsk3) or 'stranger' (XX). */
      readonly trust: LinkTrust;
    }
  | { readonly type: 'event'; readonly event: CoreEvent }
  | TransferOutput;

/** What a stranger link may not carry, counted by `Core.strangerRefusals`. */
export type StrangerRefusal = 'fetch-assign' | 'url-query' | 'url-answer' | 'rpc';

/** RPC_ERROR code answering an RPC_REQUEST on a stranger link (PeaPod's reserved range). */
export const RPC_ERROR_STRANGER_LINK = 0x0001;

/** Most holders of one content a download dials on what gossip says (beyond its links). */
export const HOLDER_DIALS_MAX = 4;

interface LinkEntry {
  readonly link: PeerLink;
  readonly remoteAddress: string;
  /** The remote Device ID in hex, once asked for (the link port's peer snapshots). */
  deviceIdHex?: string;
  /** The link became ready and is the pair's one link (not a duplicate about to close). */
  registered: boolean;
  /** The gossip engine was told of it (`linkUp`). */
  gossipUp: boolean;
  /** A `dial-stranger` named the device it expects. */
  readonly expectHex: string | undefined;
}

/** A content download looking for holders through gossip. */
interface HolderSearch {
  readonly downloadId: number;
  readonly contentId: Uint8Array;
  /** Devices dialled for it (at most HOLDER_DIALS_MAX). */
  readonly dialled: Set<string>;
  /** Linked strangers sent its interest after gossip named them holders. */
  readonly interested: Set<string>;
}

export class Core {
  private readonly linkConfig: LinkConfig;
  private readonly prng: Prng;
  private readonly links = new Map<number, LinkEntry>();
  private lastNowMs = -Infinity;
  private pollCursor = 0;
  private readonly transfers: TransferEngine;
  private readonly handleTransfers: boolean;
  private readonly peerTable: PeerTable;
  private readonly dialOutputs: CoreOutput[] = [];
  private readonly ownHex: string;
  private readonly gossip: GossipEngine | undefined;
  /** Contents strangers may fetch and hear of (stranger-content.ts). */
  private readonly published = new PublishedContents();
  /** Whether the gossip self broadcasts (its published contents are announced when it starts). */
  private broadcasting = false;
  /** Trust of the peer table's pod dials: 'pod' with a pod secret (else no pod exists). */
  private readonly podTrust: LinkTrust;
  /** Dials in progress: the trust each asked for and the device a `dial-stranger` named. */
  private readonly dialFacts = new Map<number, { trust: LinkTrust; expectHex?: string }>();
  /** The wall clock the current input carried (undefined when it carried none). */
  private inputWallClockMs: number | undefined;
  /** Work waiting for an input with a wall clock (see the module header). */
  private readonly wallClockTasks: Array<(nowMs: number, wallClockMs: number) => void> = [];
  private readonly holderSearches = new Map<number, HolderSearch>();
  /** What stranger links sent that they may not (module header), by kind. */
  readonly strangerRefusals: Record<StrangerRefusal, number> = {
    'fetch-assign': 0,
    'url-query': 0,
    'url-answer': 0,
    rpc: 0,
  };

  /** @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT for a malformed option, naming it. */
  constructor(options: CoreOptions) {
    if (options.identity.secretKey.length !== 32)
      invalidArgument('identity', 'needs a 32-byte Ed25519 seed');
    if (options.podSecret !== undefined && options.podSecret.length !== 32) {
      invalidArgument('podSecret', `must be 32 bytes, got ${options.podSecret.length}`);
    }
    this.prng = new Prng(options.seed);
    this.ownHex = toHex(deriveDeviceId(options.crypto, options.identity.publicKey));
    this.peerTable = new PeerTable(this.ownHex);
    const cipher = options.cipher ?? 'ChaChaPoly';
    const psk = options.podSecret;
    const gossipOn = options.gossip !== undefined;
    this.podTrust = psk === undefined ? 'stranger' : 'pod';
    // The responder's rule (docs/protocol.md 3.1): psk suites with a pod secret, plain XX
    // without one or with gossip on; the suite a link used is its trust.
    const families: LinkTrust[] = psk === undefined ? ['stranger'] : ['pod'];
    if (psk !== undefined && gossipOn) families.push('stranger');
    const allowedSuites = families.flatMap((trust) =>
      (['ChaChaPoly', 'AESGCM'] as const).map((c) => suiteFor(trust, c)),
    );
    const capabilities =
      (options.capabilities ?? Capability.serveChunks | Capability.rpc) |
      (gossipOn ? Capability.gossip : 0);
    this.linkConfig = {
      crypto: options.crypto,
      identity: options.identity,
      staticKeyPair: options.crypto.x25519GenerateKeyPair(),
      cipher,
      allowedSuites,
      psk,
      acceptRemote: options.acceptRemote,
      hello: {
        capabilities,
        listenPort: options.listenPort ?? 0,
        deviceName: options.deviceName ?? '',
      },
      versionMin: options.versionRange?.min ?? PROTOCOL_VERSION_MIN,
      versionMax: options.versionRange?.max ?? PROTOCOL_VERSION_MAX,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? CoreDefaults.handshakeTimeoutMs,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? CoreDefaults.heartbeatIntervalMs,
      idleTimeoutMs: options.idleTimeoutMs ?? CoreDefaults.idleTimeoutMs,
      sendWindowBytes: options.sendWindowBytes ?? CoreDefaults.sendWindowBytes,
    };
    const positive = (name: keyof typeof CoreDefaults & keyof CoreOptions): number => {
      const value = options[name] ?? CoreDefaults[name];
      if (!Number.isSafeInteger(value) || value < 1)
        invalidArgument(name, `${String(value)} is not a positive integer`);
      return value;
    };
    this.handleTransfers = options.handleTransfers ?? true;
    this.transfers = new TransferEngine(
      options.crypto,
      this.prng.fork(),
      {
        reorderWindowBytes: positive('reorderWindowBytes'),
        pieceSizeBytes: positive('pieceSizeBytes'),
        servingPerLinkMax: positive('servingPerLinkMax'),
        stallFloorMs: positive('stallFloorMs'),
        banThreshold: positive('banThreshold'),
        progressIntervalMs: positive('progressIntervalMs'),
        capabilities: this.linkConfig.hello.capabilities,
        strangerRules: gossipOn,
        corruptServedChunks: options.testFaults?.corruptServedChunks === true,
      },
      this.linkDirectory(),
    );
    // Forked after the transfers' PRNG, so a core without gossip replays as before.
    this.broadcasting = options.gossip?.self.broadcast === true;
    this.gossip =
      options.gossip === undefined
        ? undefined
        : new GossipEngine({
            crypto: options.crypto,
            identity: options.identity,
            prng: this.prng.fork(),
            self: options.gossip.self,
            ...(options.gossip.settings === undefined ? {} : { settings: options.gossip.settings }),
          });
  }

  /** The transfer engine's view of the link table (transfer/link-port.ts): ready links only. */
  private linkDirectory(): LinkDirectory {
    const ready = (linkId: number): PeerLink | undefined => {
      const link = this.links.get(linkId)?.link;
      return link?.state === 'ready' ? link : undefined;
    };
    return {
      send: (linkId, message) => {
        const link = ready(linkId);
        if (link === undefined) return false;
        if (!this.strangerMayHear(linkId, message)) return false;
        sendOnLane(link, message);
        return true;
      },
      stream: (linkId, requestId, bytes, baseOffset) => {
        ready(linkId)?.queueStream(requestId, bytes, baseOffset);
      },
      drop: (linkId, requestId) =>
        ready(linkId)?.dropStream(requestId) ?? { dropped: false, sentBytes: 0 },
      isQueued: (linkId, requestId) => ready(linkId)?.isStreamQueued(requestId) ?? false,
      ready: () => {
        const ids: number[] = [];
        for (const [linkId, { link }] of this.links) if (link.state === 'ready') ids.push(linkId);
        return ids.sort((a, b) => a - b);
      },
      peer: (linkId) => {
        const entry = this.links.get(linkId);
        const link = entry?.link;
        const remote = link?.remote;
        if (link?.state !== 'ready' || remote === undefined) return undefined;
        entry!.deviceIdHex ??= toHex(remote.deviceId);
        return {
          deviceId: remote.deviceId,
          deviceIdHex: entry!.deviceIdHex,
          deviceName: remote.deviceName,
          capabilities: remote.capabilities,
          rttMs: link.rttMs,
          direction: link.direction,
          trust: remote.trust,
        };
      },
      close: (linkId, reason, detail, nowMs) => {
        this.links.get(linkId)?.link.close(reason, detail, 'local', nowMs);
      },
    };
  }

  /**
   * Bytes the core holds for a download: verified bytes waiting for order, bytes delivered but
   * not yet acknowledged with `delivered`, and partial pieces in flight. 0 once it ended.
   */
  downloadMemoryBytes(downloadId: number): number {
    return this.transfers.downloadMemoryBytes(downloadId);
  }

  /**
   * Feeds one input. Never throws because of bytes from the network; throws only when the host
   * breaks the contract (time going backwards, an unknown or reused link ID).
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT / PEAPOD_ERR_INVALID_STATE on host misuse.
   */
  handle(input: CoreInput): void {
    if (!(input.nowMs >= this.lastNowMs)) {
      invalidArgument('input.nowMs', `time went backwards (${input.nowMs} < ${this.lastNowMs})`);
    }
    this.lastNowMs = input.nowMs;
    const nowMs = input.nowMs;
    this.inputWallClockMs = undefined;
    switch (input.type) {
      case 'link-opened': {
        if (this.links.has(input.linkId)) {
          throw new PeapodError('PEAPOD_ERR_INVALID_STATE', `link ${input.linkId} is already open`);
        }
        const framing = input.framing ?? 'stream';
        if (framing !== 'stream' && framing !== 'message') {
          invalidArgument('input.framing', `must be "stream" or "message", got ${String(framing)}`);
        }
        const facts = input.dialId === undefined ? undefined : this.dialFacts.get(input.dialId);
        if (input.dialId !== undefined) this.dialFacts.delete(input.dialId);
        const link = new PeerLink(
          input.direction,
          this.linkConfig,
          this.prng.fork(),
          nowMs,
          framing,
          input.direction === 'outbound' ? (facts?.trust ?? this.podTrust) : undefined,
        );
        this.links.set(input.linkId, {
          link,
          remoteAddress: input.remoteAddress,
          registered: false,
          gossipUp: false,
          expectHex: input.direction === 'outbound' ? facts?.expectHex : undefined,
        });
        this.peerTable.linkOpened(input.linkId, input.dialId);
        break;
      }
      case 'peer-discovered': {
        const { deviceId, address, port, source } = input;
        if (deviceId.length !== 32) invalidArgument('deviceId', 'must be 32 bytes');
        const dial = this.peerTable.discovered(
          deviceId,
          address,
          port,
          source,
          nowMs,
          this.podTrust,
        );
        if (dial !== undefined) this.pushDial(dial);
        break;
      }
      case 'dial-failed':
        this.dialFacts.delete(input.dialId);
        this.peerTable.dialFailed(input.dialId, nowMs);
        break;
      case 'bytes-received':
        this.inputWallClockMs = checkOptionalWallClock('input.wallClockMs', input.wallClockMs);
        this.runWallClockTasks(nowMs);
        this.links.get(input.linkId)?.link.onBytes(input.bytes, nowMs);
        break;
      case 'bytes-flushed':
        this.links.get(input.linkId)?.link.onFlushed(input.byteCount);
        this.transfers.onFlushed(input.linkId, nowMs);
        break;
      case 'link-closed':
        this.links.get(input.linkId)?.link.onTransportClosed(nowMs);
        break;
      case 'timer-fired': {
        const wall = checkOptionalWallClock('input.wallClockMs', input.wallClockMs);
        if (this.gossip !== undefined && wall === undefined) {
          invalidArgument('input.wallClockMs', 'is required on timer-fired when gossip is on');
        }
        this.inputWallClockMs = wall;
        this.runWallClockTasks(nowMs);
        for (const { link } of this.links.values()) {
          const due = link.nextDeadlineMs();
          if (due !== undefined && due <= nowMs) link.onTimer(nowMs);
        }
        this.transfers.onTimer(nowMs);
        const gossipDue = this.gossip?.nextDeadlineMs();
        if (gossipDue !== undefined && gossipDue <= nowMs) this.gossip!.timer(nowMs, wall!);
        break;
      }
      case 'close-link':
        this.links
          .get(input.linkId)
          ?.link.close(input.reason, 'closed by the application', 'local', nowMs);
        break;
      case 'send-message': {
        const entry = this.links.get(input.linkId);
        if (entry === undefined || entry.link.state !== 'ready') {
          throw new PeapodError('PEAPOD_ERR_INVALID_STATE', `link ${input.linkId} is not ready`);
        }
        sendOnLane(entry.link, input.message);
        break;
      }
      case 'shutdown':
        for (const { link } of this.links.values()) {
          link.close(ReasonCode.goingAway, 'shutting down', 'local', nowMs);
        }
        break;
      case 'gossip-records': {
        const gossip = this.requireGossip(input.type);
        const wall = checkWallClock('input.wallClockMs', input.wallClockMs);
        const records = checkRecords('input.records', input.records);
        if (input.source !== 'tracker' && input.source !== 'cache') {
          invalidArgument(
            'input.source',
            `must be "tracker" or "cache", got ${String(input.source)}`,
          );
        }
        this.inputWallClockMs = wall;
        this.runWallClockTasks(nowMs);
        gossip.addRecords(records, input.source, nowMs, wall);
        break;
      }
      case 'gossip-self': {
        const gossip = this.requireGossip(input.type);
        const wall = checkWallClock('input.wallClockMs', input.wallClockMs);
        const self = checkSelf('input.self', input.self);
        this.inputWallClockMs = wall;
        this.runWallClockTasks(nowMs);
        gossip.setSelf(self, nowMs, wall);
        // Published contents are announced once this device starts broadcasting.
        if (self.broadcast && !this.broadcasting)
          this.announcePublished(this.published.ids(), true);
        this.broadcasting = self.broadcast;
        break;
      }
      case 'find-peers': {
        const gossip = this.requireGossip(input.type);
        const wall = checkWallClock('input.wallClockMs', input.wallClockMs);
        const contentId =
          input.contentId === undefined
            ? undefined
            : checkDeviceId('input.contentId', input.contentId);
        this.inputWallClockMs = wall;
        this.runWallClockTasks(nowMs);
        gossip.requestPeers(contentId, nowMs, wall);
        break;
      }
      case 'dial-stranger': {
        this.requireGossip(input.type);
        const address = checkAddress('input.address', input.address);
        const port = checkPort('input.port', input.port, 1);
        const deviceId =
          input.deviceId === undefined
            ? undefined
            : checkDeviceId('input.deviceId', input.deviceId);
        const expectHex = deviceId === undefined ? undefined : toHex(deviceId);
        if (expectHex === this.ownHex) invalidArgument('input.deviceId', 'is this device');
        const dial = this.peerTable.dialStranger(deviceId, address, port, 'manual', nowMs);
        if (dial !== undefined) this.pushDial(dial, expectHex);
        break;
      }
      case 'start-download':
        this.transfers.handle(input);
        if (this.gossip !== undefined && input.source.kind === 'content')
          this.searchHolders(input.downloadId, input.source.contentId, nowMs);
        break;
      case 'cancel-download':
        this.holderSearches.delete(input.downloadId);
        this.transfers.handle(input);
        break;
      case 'content-available':
        this.transfers.handle(input);
        if (input.published === true && this.published.publish(input.manifest))
          this.announcePublished([input.manifest.contentId], true);
        else if (input.published === false && this.published.has(toHex(input.manifest.contentId))) {
          // Strangers that asked for it hear CHUNK_REMOVE while it still passes the link port.
          this.transfers.withdrawFromStrangers(input.manifest.contentId);
          this.published.unpublish(input.manifest.contentId);
          this.announcePublished([input.manifest.contentId], false);
        }
        break;
      case 'content-removed':
        this.transfers.handle(input);
        if (input.chunkIndices === undefined && this.published.unpublish(input.contentId))
          this.announcePublished([input.contentId], false);
        break;
      case 'delivered':
      case 'origin-data':
      case 'origin-end':
      case 'chunk-read':
      case 'delivered-read':
      case 'url-content':
      case 'lookup-url':
        this.transfers.handle(input);
        break;
      default: {
        const unreachable: never = input;
        invalidArgument('input.type', `unknown input ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /** The next output, or `undefined` when there is nothing to do until the next input. */
  poll(): CoreOutput | undefined {
    const dial = this.dialOutputs.shift();
    if (dial !== undefined) return dial;
    for (;;) {
      const transferOutput = this.transfers.takeOutput();
      if (transferOutput !== undefined) {
        if (transferOutput.type === 'event') {
          const event = transferOutput.event;
          if (event.type === 'peer:banned') this.peerTable.banned(event.deviceId);
          if (event.type === 'download:complete' || event.type === 'download:failed')
            this.holderSearches.delete(event.downloadId);
        }
        return transferOutput;
      }
      const gossipOutput = this.gossip?.takeOutput();
      if (gossipOutput !== undefined) {
        const translated = this.translateGossip(gossipOutput);
        if (translated !== undefined) return translated;
        continue; // queued on a link or the dial queue: look again
      }
      const queuedDial = this.dialOutputs.shift();
      if (queuedDial !== undefined) return queuedDial;
      // Visit links round-robin so one busy link cannot starve the others.
      const entries = [...this.links.entries()];
      let found = false;
      for (let i = 0; i < entries.length; i++) {
        const [linkId, entry] = entries[(this.pollCursor + i) % entries.length]!;
        const output = entry.link.poll();
        if (output === undefined) continue;
        this.pollCursor = (this.pollCursor + i + 1) % Math.max(1, entries.length);
        found = true;
        const translated = this.translate(linkId, entry, output);
        if (translated !== undefined) return translated;
        break; // routed to the transfer engine: look again (it may have queued outputs)
      }
      if (!found) return undefined;
    }
  }

  /** When the host must call `handle({ type: 'timer-fired' })` next, or `undefined`. */
  nextDeadlineMs(): number | undefined {
    // Work waiting for a wall clock is due at once (module header).
    if (this.wallClockTasks.length > 0) return this.lastNowMs;
    let min: number | undefined = this.transfers.nextDeadlineMs(this.lastNowMs);
    const gossipDue = this.gossip?.nextDeadlineMs();
    if (gossipDue !== undefined && (min === undefined || gossipDue < min)) min = gossipDue;
    for (const { link } of this.links.values()) {
      const due = link.nextDeadlineMs();
      if (due !== undefined && (min === undefined || due < min)) min = due;
    }
    return min;
  }

  /** The peer table: every device discovered or connected, and how (`peapod peers`). */
  peers(): PeerSnapshot[] {
    return this.peerTable.snapshot();
  }

  /** The gossip engine, when `CoreOptions.gossip` is set (its table, counters, own record). */
  get gossipEngine(): GossipEngine | undefined {
    return this.gossip;
  }

  private requireGossip(inputType: string): GossipEngine {
    if (this.gossip === undefined) {
      throw new PeapodError('PEAPOD_ERR_INVALID_STATE', `${inputType} needs CoreOptions.gossip`);
    }
    return this.gossip;
  }

  private pushDial(dial: DialOrder, expectHex?: string): void {
    this.dialFacts.set(dial.dialId, {
      trust: dial.trust,
      ...(expectHex === undefined ? {} : { expectHex }),
    });
    this.dialOutputs.push({ type: 'connect', ...dial });
  }

  /** Runs the work that waited for a wall clock, when this input carried one. */
  private runWallClockTasks(nowMs: number): void {
    const wall = this.inputWallClockMs;
    if (wall === undefined || this.wallClockTasks.length === 0) return;
    for (const task of this.wallClockTasks.splice(0)) task(nowMs, wall);
  }

  /** Runs `task` with this input's wall clock, or with the next input's that carries one. */
  private withWallClock(task: (nowMs: number, wallClockMs: number) => void): void {
    if (this.inputWallClockMs !== undefined) task(this.lastNowMs, this.inputWallClockMs);
    else this.wallClockTasks.push(task);
  }

  /**
   * A content download with gossip on: dial the holders gossip knows, and ask the network for
   * more (PEER_REQUEST); what answers is dialled as it is learnt (`dialHolders`).
   */
  private searchHolders(downloadId: number, contentId: Uint8Array, nowMs: number): void {
    const search: HolderSearch = {
      downloadId,
      contentId: contentId.slice(),
      dialled: new Set(),
      interested: new Set(),
    };
    this.holderSearches.set(downloadId, search);
    this.dialHolders(search, nowMs);
    this.withWallClock((at, wall) => {
      if (this.holderSearches.has(downloadId))
        this.gossip?.requestPeers(search.contentId, at, wall);
    });
  }

  /** Dials broadcasting holders of the search's content not linked yet, up to the bound. */
  private dialHolders(search: HolderSearch, nowMs: number): void {
    const gossip = this.gossip;
    if (gossip === undefined) return;
    for (const holder of gossip.peersHolding(search.contentId)) {
      if (search.dialled.size >= HOLDER_DIALS_MAX) return;
      const address = holder.addresses[0];
      if (holder.linked || address === undefined || holder.listenPort === 0) continue;
      if (search.dialled.has(holder.deviceIdHex) || this.linkTo(holder.deviceIdHex) !== undefined)
        continue;
      const dial = this.peerTable.dialStranger(
        holder.deviceId,
        address,
        holder.listenPort,
        'gossip',
        nowMs,
      );
      if (dial === undefined) continue;
      search.dialled.add(holder.deviceIdHex);
      this.pushDial(dial);
    }
  }

  /**
   * CONTENT_AVAILABILITY for published contents, when this device broadcasts (the engine refuses
   * otherwise: the IP rule), sent with the next wall clock.
   */
  private announcePublished(contentIds: readonly Uint8Array[], held: boolean): void {
    const gossip = this.gossip;
    if (gossip === undefined || contentIds.length === 0) return;
    const entries = contentIds.map((contentId) => ({ contentId: contentId.slice(), held }));
    this.withWallClock((at, wall) => {
      gossip.announceContent(entries, at, wall);
    });
  }

  /**
   * Whether a transfer message may go to link `linkId` (stranger-content.ts): CHUNK_ANNOUNCE /
   * CHUNK_REMOVE name a content, so a stranger hears them only of a published content, or of
   * one gossip learnt it holds (a download's interest). Everything else, and pod links: yes.
   */
  private strangerMayHear(linkId: number, message: WireMessage): boolean {
    if (this.gossip === undefined) return true;
    if (message.type !== 'chunk-announce' && message.type !== 'chunk-remove') return true;
    const remote = this.links.get(linkId)?.link.remote;
    if (remote === undefined || remote.trust !== 'stranger') return true;
    if (this.published.has(toHex(message.contentId))) return true;
    return this.gossip.holds(remote.deviceId, message.contentId);
  }

  /**
   * Gossip named `deviceId` a holder of a content a download looks for, and a stranger link to
   * it is up: send the download's interest now (an empty CHUNK_ANNOUNCE; the holder answers with
   * what it has). A holder not linked yet is dialled instead (`dialHolders`), and the transfer
   * engine sends the interest when that link is ready.
   */
  private sendInterestToHolder(deviceId: Uint8Array): void {
    const hex = toHex(deviceId);
    const linkId = this.linkTo(hex);
    if (linkId === undefined) return;
    const link = this.links.get(linkId)!.link;
    if (link.remote?.trust !== 'stranger') return;
    if ((link.remote.capabilities & Capability.serveChunks) === 0) return;
    for (const search of this.holderSearches.values()) {
      if (search.interested.has(hex) || !this.gossip!.holds(deviceId, search.contentId)) continue;
      search.interested.add(hex);
      sendOnLane(link, { type: 'chunk-announce', contentId: search.contentId, ranges: [] });
    }
  }

  /** The registered ready link to device `hex`, if any. */
  private linkTo(hex: string): number | undefined {
    for (const [linkId, entry] of this.links) {
      if (entry.registered && entry.deviceIdHex === hex && entry.link.state === 'ready')
        return linkId;
    }
    return undefined;
  }

  /** One gossip engine output: a frame on a link, a stranger dial, a close, or an event. */
  private translateGossip(
    output: NonNullable<ReturnType<GossipEngine['takeOutput']>>,
  ): CoreOutput | undefined {
    switch (output.type) {
      case 'send': {
        const entry = this.links.get(output.linkId);
        if (entry?.gossipUp === true && entry.link.state === 'ready')
          sendOnLane(entry.link, output.frame);
        return undefined;
      }
      case 'dial': {
        const hex = toHex(output.deviceId);
        if (hex === this.ownHex || this.linkTo(hex) !== undefined) return undefined;
        const dial = this.peerTable.dialStranger(
          output.deviceId,
          output.address,
          output.port,
          'gossip',
          this.lastNowMs,
        );
        if (dial !== undefined) this.pushDial(dial);
        return undefined;
      }
      case 'close':
        this.links
          .get(output.linkId)
          ?.link.close(ReasonCode.normal, 'the gossip view is full', 'local', this.lastNowMs);
        return undefined;
      case 'event': {
        const event = output.event;
        if (event.type === 'gossip:peer' || event.type === 'gossip:content') {
          for (const search of this.holderSearches.values())
            this.dialHolders(search, this.lastNowMs);
        }
        if (event.type === 'gossip:content' && event.held && this.holderSearches.size > 0)
          this.sendInterestToHolder(event.deviceId);
        return { type: 'event', event };
      }
      default: {
        const unreachable: never = output;
        return invalidArgument('output', `unknown gossip output ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /** Number of links not yet closed. */
  get openLinkCount(): number {
    let count = 0;
    for (const { link } of this.links.values()) if (link.state !== 'closed') count++;
    return count;
  }

  /**
   * A message from a ready link: gossip to the engine, what a stranger may not send refused
   * (module header), transfer messages to the transfer engine, the rest up as `peer:message`.
   * A duplicate link about to close carries nothing.
   */
  private routeMessage(
    linkId: number,
    entry: LinkEntry,
    message: WireMessage,
  ): CoreOutput | undefined {
    if (!entry.registered) return undefined;
    const gossip = this.gossip;
    if (gossip !== undefined && message.type === 'gossip') {
      const wall = this.inputWallClockMs;
      if (wall !== undefined) gossip.receive(linkId, message, this.lastNowMs, wall);
      else {
        return {
          type: 'event',
          event: {
            type: 'gossip:rejected',
            linkId,
            rejection: 'stale',
            detail: 'the host gave no wall clock with these bytes',
          },
        };
      }
      return undefined;
    }
    if (gossip !== undefined && entry.link.remote?.trust === 'stranger') {
      // A stranger is served published contents only (stranger-content.ts), and told "not
      // found" exactly as for a hash nobody holds.
      if (
        message.type === 'chunk-request' &&
        this.handleTransfers &&
        !this.published.servesHash(toHex(message.chunkHash))
      ) {
        sendOnLane(entry.link, {
          type: 'status',
          requestId: message.requestId,
          status: TransferStatus.notFound,
          length: 0,
          message: 'no verified copy',
        });
        return undefined;
      }
      const refused = strangerRefusalOf(message.type);
      if (refused !== undefined) {
        this.strangerRefusals[refused]++;
        if (message.type === 'rpc-request') {
          sendOnLane(entry.link, {
            type: 'rpc-error',
            callId: message.callId,
            code: RPC_ERROR_STRANGER_LINK,
            message: 'RPC is not served on a stranger link',
          });
        }
        // FETCH_ASSIGN gets its refusal STATUS from the transfer engine (fetch-helper.ts).
        if (message.type !== 'fetch-assign' || !this.handleTransfers) return undefined;
      }
    }
    if (this.handleTransfers && TRANSFER_MESSAGE_TYPES.has(message.type)) {
      this.transfers.onMessage(linkId, message, this.lastNowMs);
      return undefined;
    }
    return { type: 'event', event: { type: 'peer:message', linkId, message } };
  }

  private translate(
    linkId: number,
    entry: LinkEntry,
    output: ReturnType<PeerLink['poll']> & object,
  ): CoreOutput | undefined {
    switch (output.type) {
      case 'send':
        return { type: 'send', linkId, bytes: output.bytes };
      case 'disconnect':
        this.links.delete(linkId);
        return { type: 'disconnect', linkId };
      case 'ready': {
        const remote = output.remote;
        const hex = toHex(remote.deviceId);
        entry.deviceIdHex = hex;
        if (entry.expectHex !== undefined && entry.expectHex !== hex) {
          entry.link.close(
            ReasonCode.identityRejected,
            `dialled ${entry.expectHex.slice(0, 12)}, answered by ${hex.slice(0, 12)}`,
            'local',
            this.lastNowMs,
          );
          return undefined;
        }
        const existing = this.linkTo(hex);
        if (existing !== undefined) {
          const other = this.links.get(existing)!.link;
          const loser = duplicateToClose(
            this.ownHex,
            hex,
            { linkId: existing, trust: other.remote!.trust, direction: other.direction },
            { linkId, trust: remote.trust, direction: entry.link.direction },
          );
          if (loser === existing) {
            other.close(
              ReasonCode.duplicateLink,
              'a second link replaced it',
              'local',
              this.lastNowMs,
            );
          } else {
            // This link goes (closed here, or by the remote under the same rule): not counted.
            if (loser === linkId) {
              entry.link.close(ReasonCode.duplicateLink, 'already linked', 'local', this.lastNowMs);
            }
            return undefined;
          }
        }
        entry.registered = true;
        this.peerTable.linkReady(
          linkId,
          remote.deviceId,
          remote.deviceName,
          remote.protocolVersion,
          entry.remoteAddress,
          remote.listenPort,
          entry.link.direction,
          this.lastNowMs,
          remote.trust,
        );
        this.transfers.onLinkReady(linkId, remote.deviceId, this.lastNowMs);
        const speaksGossip = (remote.capabilities & Capability.gossip) !== 0;
        if (this.gossip !== undefined && speaksGossip && hex !== this.ownHex) {
          this.withWallClock((at, wall) => {
            if (!entry.registered || entry.link.state !== 'ready') return;
            entry.gossipUp = true;
            this.gossip!.linkUp(linkId, remote.deviceId, at, wall, {
              outbound: entry.link.direction === 'outbound',
              address: entry.remoteAddress,
              pinned: remote.trust !== 'stranger',
            });
          });
        }
        return {
          type: 'event',
          event: {
            type: 'peer:connect',
            linkId,
            remoteAddress: entry.remoteAddress,
            direction: entry.link.direction,
            remote: output.remote,
          },
        };
      }
      case 'closed':
        entry.registered = false;
        if (entry.gossipUp) {
          entry.gossipUp = false;
          this.gossip?.linkDown(linkId, this.lastNowMs);
        }
        this.peerTable.linkClosed(linkId, this.lastNowMs);
        this.transfers.onLinkClosed(linkId, this.lastNowMs);
        return {
          type: 'event',
          event: {
            type: 'peer:disconnect',
            linkId,
            deviceId: entry.link.remote?.deviceId,
            reason: output.reason,
            detail: output.detail,
            by: output.by,
          },
        };
      case 'rtt':
        this.peerTable.rtt(linkId, output.rttMs);
        if (entry.registered && entry.link.remote !== undefined)
          this.gossip?.observe(entry.link.remote.deviceId, { rttMs: output.rttMs });
        return { type: 'event', event: { type: 'peer:rtt', linkId, rttMs: output.rttMs } };
      case 'message':
        return this.routeMessage(linkId, entry, output.message);
      default: {
        const unreachable: never = output;
        return invalidArgument('output', `unknown link output ${JSON.stringify(unreachable)}`);
      }
    }
  }
}

/** What a stranger link may not send, by message type (undefined: allowed). */
function strangerRefusalOf(type: WireMessage['type']): StrangerRefusal | undefined {
  switch (type) {
    case 'fetch-assign':
    case 'url-query':
    case 'url-answer':
      return type;
    case 'rpc-request':
    case 'rpc-response':
    case 'rpc-error':
      return 'rpc';
    default:
      return undefined;
  }
}
