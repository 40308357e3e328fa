/**
 * RPC between pod members, over the wire's RPC_REQUEST / RPC_RESPONSE / RPC_ERROR frames
 * (docs/protocol.md 6.10): the node's side of them, which the core passes up as `peer:message`.
 *
 * Theory of operation
 * - Members: every ready link completed with the pod secret whose remote advertises `rpc`
 *   (`peer:connect`), by device ID; a device with two links keeps the newest. A stranger link
 *   is never a member (the core answers RPC there with RPC_ERROR itself).
 * - `call(deviceHex, method, body, timeoutMs)` sends one RPC_REQUEST and resolves with the
 *   response body; it rejects with `RpcFailed` on RPC_ERROR, on the timeout, or when the link
 *   closes first. A late answer (after the timeout) is ignored, as the protocol says.
 * - `handle(method, fn)`: requests for `method` on a member link are answered with what `fn`
 *   resolves; a rejection becomes RPC_ERROR (its `code` when it has one, else 0x0100) with the
 *   error's message cut to the frame's limit. An unknown method gets RPC_ERROR 0x0002; a link
 *   with `INBOUND_CALLS_MAX` calls already in progress gets RPC_ERROR 0x0003 (busy), so a member
 *   cannot pile up waiting handlers without bound.
 *   Nothing a peer sends can throw out of here.
 */
import { Capability, toHex, type WireMessage } from '@peapod/core';

/** RPC_ERROR for a method nobody registered (PeaPod's reserved range). */
export const RPC_ERROR_UNKNOWN_METHOD = 0x0002;
/** RPC_ERROR when a member already has `INBOUND_CALLS_MAX` calls waiting here. */
export const RPC_ERROR_BUSY = 0x0003;
/** RPC_ERROR for a handler's failure that named no code of its own. */
export const RPC_ERROR_FAILED = 0x0100;
/** Calls one link may have in progress here (a long-poll each, cluster.ts): the rest are refused. */
export const INBOUND_CALLS_MAX = 256;
const MESSAGE_MAX_BYTES = 1024;
/** The most an RPC_RESPONSE body can hold (one frame, docs/protocol.md 6.10). */
const RESPONSE_BODY_MAX_BYTES = 65514;

export interface RpcHost {
  on(event: 'peer:connect', listener: (event: PeerConnect) => void): unknown;
  on(event: 'peer:disconnect', listener: (event: { linkId: number }) => void): unknown;
  on(
    event: 'peer:message',
    listener: (event: { linkId: number; message: WireMessage }) => void,
  ): unknown;
  send(linkId: number, message: WireMessage): void;
}

interface PeerConnect {
  readonly linkId: number;
  readonly remote: { deviceId: Uint8Array; capabilities: number; trust: string };
}

export class RpcFailed extends Error {
  override readonly name = 'RpcFailed';
  constructor(
    message: string,
    /** The callee's RPC_ERROR code; undefined for a timeout or a closed link. */
    readonly code?: number,
  ) {
    super(message);
  }
}

/** A handler's error with an RPC_ERROR code of its own (0x0100 and above). */
export class RpcRefusal extends Error {
  override readonly name = 'RpcRefusal';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

type Handler = (body: Uint8Array, fromDeviceHex: string) => Promise<Uint8Array>;

interface PendingCall {
  readonly linkId: number;
  readonly resolve: (body: Uint8Array) => void;
  readonly reject: (error: RpcFailed) => void;
  readonly timer: NodeJS.Timeout;
}

export class PodRpc {
  /** Device hex -> its link, for members. */
  private readonly linkOf = new Map<string, number>();
  private readonly deviceOf = new Map<number, { hex: string; id: Uint8Array }>();
  private readonly pending = new Map<number, PendingCall>();
  private readonly handlers = new Map<string, Handler>();
  /** Per link: inbound calls whose answer is not sent yet. */
  private readonly inbound = new Map<number, number>();
  private nextCallId = 1;

  constructor(private readonly host: RpcHost) {
    host.on('peer:connect', (event) => {
      if (event.remote.trust !== 'pod' || (event.remote.capabilities & Capability.rpc) === 0)
        return;
      const hex = toHex(event.remote.deviceId);
      this.linkOf.set(hex, event.linkId);
      this.deviceOf.set(event.linkId, { hex, id: event.remote.deviceId });
    });
    host.on('peer:disconnect', ({ linkId }) => this.linkDown(linkId));
    host.on('peer:message', ({ linkId, message }) => this.onMessage(linkId, message));
  }

  /** The members' device IDs (raw bytes), in no particular order. */
  members(): Uint8Array[] {
    return [...this.linkOf.values()].map((linkId) => this.deviceOf.get(linkId)!.id);
  }

  handle(method: string, handler: Handler): void {
    this.handlers.set(method, handler);
  }

  call(
    deviceHex: string,
    method: string,
    body: Uint8Array,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    const linkId = this.linkOf.get(deviceHex);
    if (linkId === undefined) return Promise.reject(new RpcFailed(`${deviceHex} is not connected`));
    const callId = this.nextCallId;
    this.nextCallId = this.nextCallId >= 0xffffffff ? 1 : this.nextCallId + 1;
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(callId);
        reject(new RpcFailed(`${method} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(callId, { linkId, resolve, reject, timer });
      this.host.send(linkId, { type: 'rpc-request', callId, method, body });
    });
  }

  private linkDown(linkId: number): void {
    const device = this.deviceOf.get(linkId);
    this.deviceOf.delete(linkId);
    if (device !== undefined && this.linkOf.get(device.hex) === linkId)
      this.linkOf.delete(device.hex);
    for (const [callId, call] of this.pending) {
      if (call.linkId !== linkId) continue;
      clearTimeout(call.timer);
      this.pending.delete(callId);
      call.reject(new RpcFailed('the link closed before the answer'));
    }
  }

  private onMessage(linkId: number, message: WireMessage): void {
    if (message.type === 'rpc-response' || message.type === 'rpc-error') {
      const call = this.pending.get(message.callId);
      if (call === undefined || call.linkId !== linkId) return;
      clearTimeout(call.timer);
      this.pending.delete(message.callId);
      if (message.type === 'rpc-response') call.resolve(message.body);
      else call.reject(new RpcFailed(message.message, message.code));
      return;
    }
    if (message.type !== 'rpc-request') return;
    const device = this.deviceOf.get(linkId);
    if (device === undefined) return; // not a member link: the core answered it already
    const { callId, method } = message;
    const handler = this.handlers.get(method);
    const answer = (reply: WireMessage): void => {
      // The link may have closed meanwhile: then there is nobody to answer.
      if (this.deviceOf.has(linkId)) this.host.send(linkId, reply);
    };
    if (handler === undefined) {
      answer({
        type: 'rpc-error',
        callId,
        code: RPC_ERROR_UNKNOWN_METHOD,
        message: truncate(`no such method: ${method}`),
      });
      return;
    }
    const waiting = this.inbound.get(linkId) ?? 0;
    if (waiting >= INBOUND_CALLS_MAX) {
      answer({
        type: 'rpc-error',
        callId,
        code: RPC_ERROR_BUSY,
        message: `${waiting} calls of this link are still in progress; retry when one ends`,
      });
      return;
    }
    this.inbound.set(linkId, waiting + 1);
    const finished = () => {
      const left = (this.inbound.get(linkId) ?? 1) - 1;
      if (left > 0) this.inbound.set(linkId, left);
      else this.inbound.delete(linkId);
    };
    handler(message.body.slice(), device.hex)
      .finally(finished)
      .then(
        (body) =>
          answer(
            body.length <= RESPONSE_BODY_MAX_BYTES
              ? { type: 'rpc-response', callId, body }
              : {
                  type: 'rpc-error',
                  callId,
                  code: RPC_ERROR_FAILED,
                  message: `the answer (${body.length} bytes) does not fit one frame`,
                },
          ),
        (error: unknown) =>
          answer({
            type: 'rpc-error',
            callId,
            code: error instanceof RpcRefusal ? error.code : RPC_ERROR_FAILED,
            message: truncate(error instanceof Error ? error.message : String(error)),
          }),
      );
  }
}

function truncate(text: string): string {
  let out = text;
  while (Buffer.byteLength(out) > MESSAGE_MAX_BYTES) out = out.slice(0, -16);
  return out;
}
