/**
 * One peer link: the protocol state of one transport connection (a TCP socket, a WebRTC data
 * channel), from the first handshake byte to the last GOODBYE. Owned by the Core; it never
 * touches I/O itself.
 *
 * Layers, bottom to top:
 *   bytes  -> records, by the link's framing, chosen by the host when the link opens
 *             (wire/link-framing.ts): 'stream' (TCP), a u16 length before each record;
 *             'message' (data channels, WebSockets), each chunk the host feeds is one record,
 *             and each `send` output is one record, to go out as one message.
 *   record -> SecureSession (Noise XX / XXpsk3 handshake, then AEAD transport records)
 *   frame  -> decodeMessage / encodeMessage (docs/protocol.md)
 *   message-> HELLO version negotiation, HEARTBEAT ping/pong, GOODBYE; other messages are
 *             handed up to the Core.
 *
 * Outbound frames go through three lanes, in strict priority: control (HELLO, HEARTBEAT,
 * GOODBYE, CANCEL, ...), then RPC, then data (DATA frames cut lazily from queued streams; a STATUS
 * that ends a request queued behind its DATA, see `sendAfterData`). Control
 * and RPC frames are sealed and emitted at once; DATA frames are cut and sealed only while the
 * bytes handed to the host but not yet flushed to its socket stay below `sendWindowBytes`. So a
 * 16 MiB chunk never sits in a socket buffer in front of a HEARTBEAT or an RPC: at most one
 * window of DATA does (docs/protocol.md, "Streams and priorities").
 *
 * State: 'handshaking' -> 'awaiting-hello' -> 'ready' -> 'closed'. Timers: handshake deadline,
 * heartbeat (ping) interval, idle deadline (reset by every record received).
 *
 * Bytes and copies. Each record is sealed once and opened once (one AEAD pass per side).
 * Sending: a DATA frame is sealed from its 13-byte header and a view of the queued payload
 * (`sealParts`), and every other frame from its encoding; the provider's ciphertext pieces leave
 * as they are, so over a stream no payload byte is copied in user space. Over messages the pieces
 * of one record are joined into one buffer (one copy: a message is one buffer). Receiving over a
 * stream: a record inside one received chunk is a view of it; one spread over chunks is copied
 * once into a buffer the decoder reuses, so it is opened before the next record is cut, and the
 * few handshake records (of which the Noise state keeps views) are copied out first. Over
 * messages the chunk is the record, a view of the host's buffer: hosts hand received buffers over
 * and never reuse them. Bytes from the network never throw: a malformed or oversized record
 * closes the link with a reason.
 */
import { assert, invalidArgument } from './errors.js';
import type { AeadCipher, CryptoProvider, KeyPair } from './crypto-provider.js';
import { SecureSession, type NoiseSuiteName } from './secure-session.js';
import { createLinkFramer, type LinkFramer, type LinkFraming } from './wire/link-framing.js';
import { decodeMessage, encodeMessage, DATA_HEADER_BYTES, MAX_DATA_BYTES } from './wire/codec.js';
import { ReasonCode, reasonName } from './wire/reason-codes.js';
import { MessageType, type HelloMessage, type WireMessage } from './wire/messages.js';
import { TimerTable } from './timer-table.js';
import type { Prng } from './prng.js';

/** Settings a link takes from its Core. */
export interface LinkConfig {
  readonly crypto: CryptoProvider;
  readonly identity: KeyPair;
  readonly staticKeyPair: KeyPair;
  /** The AEAD of the suite this side offers when it initiates (its pattern comes from the trust). */
  readonly cipher: AeadCipher;
  /** The suites this side accepts when it responds (the suite then decides the link's trust). */
  readonly allowedSuites: readonly NoiseSuiteName[];
  /** The pod secret: required for 'pod' links (XXpsk3), never mixed into a 'stranger' one. */
  readonly psk: Uint8Array | undefined;
  readonly acceptRemote: ((deviceId: Uint8Array) => boolean) | undefined;
  readonly hello: Omit<HelloMessage, 'type' | 'versionMin' | 'versionMax'>;
  readonly versionMin: number;
  readonly versionMax: number;
  readonly handshakeTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly idleTimeoutMs: number;
  readonly sendWindowBytes: number;
}

/**
 * How far a link is trusted: 'pod' when its handshake mixed in the pod (or cluster) secret
 * (XXpsk3), 'stranger' when it did not (XX: an internet peer, DESIGN.md decision 5).
 */
export type LinkTrust = 'pod' | 'stranger';

/** The trust a suite gives: psk suites prove the pod secret, plain XX does not. */
export function trustOfSuite(suite: NoiseSuiteName): LinkTrust {
  return suite.startsWith('Noise_XXpsk3_') ? 'pod' : 'stranger';
}

/** The suite an initiator offers for a link of `trust` with `cipher`. */
export function suiteFor(trust: LinkTrust, cipher: AeadCipher): NoiseSuiteName {
  const pattern = trust === 'pod' ? 'XXpsk3' : 'XX';
  return `Noise_${pattern}_25519_${cipher}_SHA256` as NoiseSuiteName;
}

/** What a ready link knows about its remote. */
export interface RemotePeer {
  readonly deviceId: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly deviceName: string;
  readonly protocolVersion: number;
  readonly capabilities: number;
  readonly listenPort: number;
  /** From the suite the handshake used (`trustOfSuite`). */
  readonly trust: LinkTrust;
}

export type LinkState = 'handshaking' | 'awaiting-hello' | 'ready' | 'closed';

export type { LinkFraming } from './wire/link-framing.js';

/** What a link asks of its Core (which turns it into Core outputs). */
export type LinkOutput =
  | { readonly type: 'send'; readonly bytes: Uint8Array }
  | { readonly type: 'disconnect' }
  | { readonly type: 'ready'; readonly remote: RemotePeer }
  | {
      readonly type: 'closed';
      readonly reason: ReasonCode;
      readonly detail: string;
      readonly by: 'local' | 'remote';
    }
  | { readonly type: 'rtt'; readonly rttMs: number }
  | { readonly type: 'message'; readonly message: WireMessage };

type LinkTimer = 'handshake' | 'heartbeat' | 'idle';

/**
 * A data-lane entry: a byte stream cut into DATA frames on demand, or one encoded frame (the
 * STATUS that ends a request) that must not overtake the DATA queued before it.
 */
interface OutboundStream {
  readonly requestId: number;
  /** An encoded frame sent as is, or undefined for a DATA stream. */
  readonly frame?: Uint8Array;
  readonly bytes: Uint8Array;
  /** Offset of `bytes[0]` within the request (so a stream can resume mid-range). */
  readonly baseOffset: number;
  sentBytes: number;
}

export class PeerLink {
  readonly direction: 'outbound' | 'inbound';
  readonly framing: LinkFraming;
  private linkState: LinkState = 'handshaking';
  private readonly session: SecureSession;
  /** Records in and out of the transport (wire/link-framing.ts). */
  private readonly framer: LinkFramer;
  private readonly timers = new TimerTable<LinkTimer>();
  private readonly outputs: LinkOutput[] = [];
  private outputHead = 0;
  private readonly rpcLane: Uint8Array[] = [];
  private readonly dataLane: OutboundStream[] = [];
  private unflushedBytes = 0;
  private remotePeer: RemotePeer | undefined;
  private pendingPing: { id: number; sentAtMs: number } | undefined;
  private lastRttMs: number | undefined;
  private linkTrust: LinkTrust | undefined;

  /**
   * `trust`, for an outbound link: the suite family it offers ('pod' needs `config.psk`). An
   * inbound link accepts `config.allowedSuites` and learns its trust from the suite offered.
   */
  constructor(
    direction: 'outbound' | 'inbound',
    private readonly config: LinkConfig,
    private readonly prng: Prng,
    nowMs: number,
    framing: LinkFraming = 'stream',
    trust: LinkTrust = config.psk === undefined ? 'stranger' : 'pod',
  ) {
    this.direction = direction;
    this.framing = framing;
    this.framer = createLinkFramer(framing);
    // A stranger link never mixes in the psk (the session refuses a psk with a plain suite).
    const psk = direction === 'outbound' && trust === 'stranger' ? undefined : config.psk;
    const common = {
      crypto: config.crypto,
      identity: config.identity,
      staticKeyPair: config.staticKeyPair,
      ...(psk === undefined ? {} : { psk }),
      ...(config.acceptRemote === undefined ? {} : { acceptRemote: config.acceptRemote }),
    };
    this.session =
      direction === 'outbound'
        ? new SecureSession({
            ...common,
            role: 'initiator',
            suite: suiteFor(trust, config.cipher),
          })
        : new SecureSession({ ...common, role: 'responder', allowedSuites: config.allowedSuites });
    this.timers.set('handshake', nowMs + config.handshakeTimeoutMs);
    if (direction === 'outbound') this.session.start();
    this.pumpSession(nowMs);
  }

  get state(): LinkState {
    return this.linkState;
  }

  private isClosed(): boolean {
    return this.linkState === 'closed';
  }

  /** The remote's identity and HELLO, once the link is ready. */
  get remote(): RemotePeer | undefined {
    return this.remotePeer;
  }

  /** The link's trust, once its handshake finished (from the suite it used). */
  get trust(): LinkTrust | undefined {
    return this.linkTrust;
  }

  /** Round-trip time from the last answered heartbeat. */
  get rttMs(): number | undefined {
    return this.lastRttMs;
  }

  /**
   * Feeds bytes read from the transport: any piece of the stream ('stream'), or exactly one
   * message, which is one record ('message'). The link keeps views of `bytes`: the host hands
   * the buffer over and must not modify it afterwards.
   */
  onBytes(bytes: Uint8Array, nowMs: number): void {
    if (this.linkState === 'closed') return;
    const framer = this.framer;
    framer.push(bytes);
    for (;;) {
      const next = framer.next();
      if (next.kind === 'need-data') break;
      if (next.kind === 'error') {
        this.close(next.reason, next.detail, 'local', nowMs);
        return;
      }
      // A handshake record is kept (the Noise state holds views of it): copy it out of a
      // reused buffer. A transport record is opened at once.
      const keep = framer.transientRecords && this.session.state !== 'open';
      this.onRecord(keep ? next.record.slice() : next.record, nowMs);
      if (this.isClosed()) return;
    }
  }

  private onRecord(record: Uint8Array, nowMs: number): void {
    this.timers.set('idle', nowMs + this.config.idleTimeoutMs);
    this.session.receiveRecord(record);
    this.pumpSession(nowMs);
  }

  /** The host flushed `byteCount` of the bytes it was given to its transport. */
  onFlushed(byteCount: number): void {
    this.unflushedBytes = Math.max(0, this.unflushedBytes - byteCount);
  }

  /** The transport ended (EOF, reset or error) without this side asking. */
  onTransportClosed(nowMs: number): void {
    if (this.linkState === 'closed') return;
    const truncated = this.framer.end();
    if (truncated !== undefined) {
      this.finish(truncated, 'the connection ended in the middle of a record', 'remote', nowMs);
    } else {
      this.finish(
        ReasonCode.connectionLost,
        'the connection ended without GOODBYE',
        'remote',
        nowMs,
      );
    }
  }

  /** Fires the link's due timers. */
  onTimer(nowMs: number): void {
    for (const timer of this.timers.takeExpired(nowMs)) {
      if (this.isClosed()) return;
      switch (timer) {
        case 'handshake':
          if (this.linkState !== 'ready') {
            this.close(ReasonCode.timeout, 'handshake did not complete in time', 'local', nowMs);
          }
          break;
        case 'idle':
          this.close(
            ReasonCode.timeout,
            `no data for ${this.config.idleTimeoutMs} ms`,
            'local',
            nowMs,
          );
          break;
        case 'heartbeat':
          this.sendPing(nowMs);
          break;
        default: {
          const unreachable: never = timer;
          assert(false, `unknown timer ${String(unreachable)}`);
        }
      }
    }
  }

  /** The earliest time this link needs to be woken. */
  nextDeadlineMs(): number | undefined {
    return this.linkState === 'closed' ? undefined : this.timers.nextDeadlineMs();
  }

  /**
   * Ends the link: sends GOODBYE when the session is open, then asks the host to disconnect.
   * Idempotent.
   */
  close(reason: ReasonCode, detail: string, by: 'local' | 'remote', nowMs: number): void {
    if (this.linkState === 'closed') return;
    if (by === 'local' && this.session.state === 'open') {
      this.sealNow(encodeMessage({ type: 'goodbye', reason, message: truncateUtf8(detail, 200) }));
    }
    this.finish(reason, detail, by, nowMs);
  }

  /** Queues a control-lane message (sent before any RPC or DATA frame still waiting). */
  sendControl(message: WireMessage): void {
    this.requireReady();
    this.sealNow(encodeMessage(message));
  }

  /**
   * Queues a message behind the DATA already queued, in the data lane: STATUS ends a request, so
   * it must not overtake that request's DATA (docs/protocol.md, "Streams and priorities").
   */
  sendAfterData(requestId: number, message: WireMessage): void {
    this.requireReady();
    const frame = encodeMessage(message);
    this.dataLane.push({ requestId, frame, bytes: frame, baseOffset: 0, sentBytes: 0 });
  }

  /** Queues an RPC-lane message (sent after control frames, before DATA frames). */
  sendRpc(message: WireMessage): void {
    this.requireReady();
    this.rpcLane.push(encodeMessage(message));
  }

  /**
   * Queues `bytes` to travel as DATA frames for `requestId`, starting at `baseOffset`. The bytes
   * are not copied; the caller must not modify them until the stream is sent.
   */
  queueStream(requestId: number, bytes: Uint8Array, baseOffset = 0): void {
    this.requireReady();
    // The frames' headers are written without the codec's per-frame checks, so check once here
    // what the codec would refuse (docs/protocol.md 6: u32 request ID, u64 offset <= 2^53 - 1).
    if (!Number.isInteger(requestId) || requestId < 0 || requestId > 0xffff_ffff) {
      invalidArgument('data.requestId', `${requestId} is not a u32`);
    }
    if (
      !Number.isSafeInteger(baseOffset) ||
      baseOffset < 0 ||
      !Number.isSafeInteger(baseOffset + bytes.length)
    ) {
      invalidArgument('data.offset', `${baseOffset} + ${bytes.length} bytes is out of range`);
    }
    if (bytes.length > 0) this.dataLane.push({ requestId, bytes, baseOffset, sentBytes: 0 });
  }

  /**
   * Drops everything still queued for `requestId` in the data lane (its unsent DATA and its
   * terminal STATUS), after a CANCEL. Returns whether anything was dropped and how many bytes of
   * the request's DATA were already cut into frames (the `length` of STATUS(cancelled)).
   */
  dropStream(requestId: number): { dropped: boolean; sentBytes: number } {
    let dropped = false;
    let sentBytes = 0;
    for (let i = this.dataLane.length - 1; i >= 0; i--) {
      const stream = this.dataLane[i]!;
      if (stream.requestId !== requestId) continue;
      if (stream.frame === undefined)
        sentBytes = Math.max(sentBytes, stream.baseOffset + stream.sentBytes);
      this.dataLane.splice(i, 1);
      dropped = true;
    }
    return { dropped, sentBytes };
  }

  /** Whether DATA or a STATUS of `requestId` is still waiting in the data lane. */
  isStreamQueued(requestId: number): boolean {
    return this.dataLane.some((stream) => stream.requestId === requestId);
  }

  /**
   * The next output, in order: everything already sealed, then RPC frames, then DATA frames while
   * the send window has room. `undefined` when nothing more can go now.
   */
  poll(): LinkOutput | undefined {
    if (this.outputHead < this.outputs.length) {
      const output = this.outputs[this.outputHead++]!;
      if (this.outputHead === this.outputs.length) {
        this.outputs.length = 0;
        this.outputHead = 0;
      }
      return output;
    }
    if (this.linkState !== 'ready') return undefined;
    const rpcFrame = this.rpcLane.shift();
    if (rpcFrame !== undefined) return this.sealToOutput(rpcFrame);
    if (this.unflushedBytes >= this.config.sendWindowBytes) return undefined;
    const stream = this.dataLane[0];
    if (stream === undefined) return undefined;
    if (stream.frame !== undefined) {
      this.dataLane.shift();
      return this.sealToOutput(stream.frame);
    }
    const take = Math.min(MAX_DATA_BYTES, stream.bytes.length - stream.sentBytes);
    const piece = stream.bytes.subarray(stream.sentBytes, stream.sentBytes + take);
    const header = dataFrameHeader(stream.requestId, stream.baseOffset + stream.sentBytes);
    stream.sentBytes += take;
    if (stream.sentBytes === stream.bytes.length) this.dataLane.shift();
    // The frame is sealed from its header and a view of the payload, and the record leaves as
    // the provider's pieces: no byte of the payload is copied on the way to the socket.
    this.emitRecordPieces(this.session.sealParts([header, piece]));
    return this.poll();
  }

  private requireReady(): void {
    assert(this.linkState === 'ready', `link is ${this.linkState}, not ready`);
  }

  /**
   * Seals one frame and emits it, after any record the session queued before (the handshake's
   * last records), so nothing overtakes. `sealParts` rather than `send`: the record comes back
   * as the provider's pieces, with no copy to append the tag.
   */
  private sealNow(frame: Uint8Array): void {
    this.drainSessionTransmits();
    this.emitRecordPieces(this.session.sealParts([frame]));
  }

  private sealToOutput(frame: Uint8Array): LinkOutput | undefined {
    this.sealNow(frame);
    return this.poll();
  }

  /** Emits one record in the link's framing (see wire/link-framing.ts). */
  private emitRecord(record: Uint8Array): void {
    this.emitRecordPieces([record]);
  }

  /** `emitRecord` for a record the session returned in pieces (see `sealParts`). */
  private emitRecordPieces(pieces: readonly Uint8Array[]): void {
    this.unflushedBytes += this.framer.frame(pieces, this.pushSend);
  }

  private readonly pushSend = (bytes: Uint8Array): void => {
    this.outputs.push({ type: 'send', bytes });
  };

  private drainSessionTransmits(): void {
    for (let event = this.session.poll(); event !== undefined; event = this.session.poll()) {
      assert(event.type === 'transmit', `unexpected session event ${event.type} while sending`);
      this.emitRecord(event.record);
    }
  }

  /** Moves every pending session event into link state and outputs. */
  private pumpSession(nowMs: number): void {
    for (let event = this.session.poll(); event !== undefined; event = this.session.poll()) {
      if (this.linkState === 'closed') return;
      switch (event.type) {
        case 'transmit':
          this.emitRecord(event.record);
          break;
        case 'open':
          this.linkState = 'awaiting-hello';
          this.linkTrust = trustOfSuite(event.suite);
          this.pendingRemoteIdentity = {
            deviceId: event.remote.deviceId,
            publicKey: event.remote.publicKey,
          };
          this.sealNow(
            encodeMessage({
              type: 'hello',
              versionMin: this.config.versionMin,
              versionMax: this.config.versionMax,
              ...this.config.hello,
            }),
          );
          break;
        case 'message':
          this.onFrame(event.plaintext, nowMs);
          break;
        case 'closed':
          this.finish(event.reason, event.detail, 'local', nowMs);
          return;
        default: {
          const unreachable: never = event;
          assert(false, `unknown session event ${String(unreachable)}`);
        }
      }
    }
  }

  private pendingRemoteIdentity: { deviceId: Uint8Array; publicKey: Uint8Array } | undefined;

  private onFrame(frame: Uint8Array, nowMs: number): void {
    const decoded = decodeMessage(frame);
    if (!decoded.ok) {
      this.close(decoded.reason, decoded.detail, 'local', nowMs);
      return;
    }
    const message = decoded.message;
    if (this.linkState === 'awaiting-hello' && message.type !== 'goodbye') {
      if (message.type !== 'hello') {
        this.close(
          ReasonCode.protocolError,
          `expected HELLO first, got ${message.type}`,
          'local',
          nowMs,
        );
        return;
      }
      this.onHello(message, nowMs);
      return;
    }
    switch (message.type) {
      case 'hello':
        this.close(ReasonCode.protocolError, 'HELLO sent twice', 'local', nowMs);
        return;
      case 'heartbeat':
        if (!message.isReply) {
          this.sealNow(encodeMessage({ type: 'heartbeat', isReply: true, id: message.id }));
        } else if (this.pendingPing !== undefined && this.pendingPing.id === message.id) {
          this.lastRttMs = nowMs - this.pendingPing.sentAtMs;
          this.pendingPing = undefined;
          this.outputs.push({ type: 'rtt', rttMs: this.lastRttMs });
        }
        return;
      case 'goodbye':
        this.finish(
          message.reason as ReasonCode,
          `remote said goodbye (${reasonName(message.reason)}): ${message.message}`,
          'remote',
          nowMs,
        );
        return;
      case 'unknown':
        return; // forward compatibility: unknown frame types are ignored
      default:
        this.outputs.push({ type: 'message', message });
    }
  }

  private onHello(hello: HelloMessage, nowMs: number): void {
    const version = Math.min(this.config.versionMax, hello.versionMax);
    if (version < Math.max(this.config.versionMin, hello.versionMin)) {
      this.close(
        ReasonCode.versionUnsupported,
        `no common protocol version: we speak ${this.config.versionMin}-${this.config.versionMax}, ` +
          `the remote ${hello.versionMin}-${hello.versionMax}`,
        'local',
        nowMs,
      );
      return;
    }
    const identity = this.pendingRemoteIdentity;
    assert(
      identity !== undefined && this.linkTrust !== undefined,
      'HELLO accepted before the session opened',
    );
    this.remotePeer = {
      trust: this.linkTrust,
      deviceId: identity.deviceId,
      publicKey: identity.publicKey,
      deviceName: hello.deviceName,
      protocolVersion: version,
      capabilities: hello.capabilities,
      listenPort: hello.listenPort,
    };
    this.linkState = 'ready';
    this.timers.clear('handshake');
    this.outputs.push({ type: 'ready', remote: this.remotePeer });
    // The first ping goes out at once: the RTT (link quality for `peapod peers`, and the
    // scheduler's pipeline depth) is known one round trip after the link is up.
    this.sendPing(nowMs);
  }

  private sendPing(nowMs: number): void {
    const id = this.prng.nextU32();
    this.pendingPing = { id, sentAtMs: nowMs };
    this.sealNow(encodeMessage({ type: 'heartbeat', isReply: false, id }));
    this.timers.set('heartbeat', nowMs + this.jitteredHeartbeatMs());
  }

  /** The heartbeat interval minus up to 10%, so links opened together do not ping in lockstep. */
  private jitteredHeartbeatMs(): number {
    const interval = this.config.heartbeatIntervalMs;
    return interval - this.prng.nextInt(Math.max(1, Math.floor(interval / 10)));
  }

  private finish(reason: ReasonCode, detail: string, by: 'local' | 'remote', _nowMs: number): void {
    if (this.linkState === 'closed') return;
    this.linkState = 'closed';
    this.timers.clearAll();
    this.rpcLane.length = 0;
    this.dataLane.length = 0;
    if (this.session.state !== 'closed') this.session.close(reason);
    // Transmit whatever the session sealed before closing (the GOODBYE), then disconnect.
    for (let event = this.session.poll(); event !== undefined; event = this.session.poll()) {
      if (event.type === 'transmit') this.emitRecord(event.record);
    }
    this.outputs.push({ type: 'closed', reason, detail, by });
    this.outputs.push({ type: 'disconnect' });
  }
}

/**
 * The 13 bytes of a DATA frame before its payload (docs/protocol.md 6, DATA): type 0x11, u32
 * request ID, u64 offset, big-endian; the payload follows as a separate part, so the frame is
 * never assembled. `encodeDataFrame(id, offset, bytes)` equals this header followed by `bytes`
 * (a test checks it). The caller has validated both values (`queueStream`).
 */
function dataFrameHeader(requestId: number, offset: number): Uint8Array {
  const header = new Uint8Array(DATA_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint8(0, MessageType.data);
  view.setUint32(1, requestId);
  view.setUint32(5, Math.floor(offset / 0x1_0000_0000));
  view.setUint32(9, offset >>> 0);
  return header;
}

/** Cuts a string to at most `maxBytes` of UTF-8 without splitting a character. */
function truncateUtf8(text: string, maxBytes: number): string {
  let out = '';
  let bytes = 0;
  for (const char of text) {
    const size =
      char.codePointAt(0)! < 0x80
        ? 1
        : char.codePointAt(0)! < 0x800
          ? 2
          : char.codePointAt(0)! < 0x10000
            ? 3
            : 4;
    if (bytes + size > maxBytes) break;
    out += char;
    bytes += size;
  }
  return out;
}
