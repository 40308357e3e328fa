/**
 * Link framing: how a link's records travel on its transport, chosen per link when it opens
 * (docs/protocol.md sections 2.1 and 2.2).
 *
 * - 'stream' (TCP): a byte stream, each record behind its u16 length. Incoming bytes go through
 *   a `RecordStreamDecoder` (record-framer.ts); a record is sent as its 2-byte prefix followed by
 *   its pieces, each a separate send, so nothing is copied (the host writes one poll loop's sends
 *   with one writev).
 * - 'message' (WebRTC data channels, WebSockets): the transport keeps boundaries, so each
 *   received chunk is one whole record (checked: 0 bytes is `protocolError`, above 65535 is
 *   `frameTooLarge`, as over a stream) and each record is sent as exactly one buffer: a record
 *   sealed in pieces is joined (one copy; a message is one buffer).
 *
 * Both framers answer `next()` like `RecordStreamDecoder` (h11's NEED_DATA pattern) and keep
 * views of what is pushed: the host hands received buffers over and never reuses them. Stream
 * records spread over several pushes share one reused buffer (`transientRecords`): valid only
 * until the next `next()`, so a caller keeping one (a handshake record, which the Noise state
 * keeps views of) copies it first. Bytes never make a framer throw; errors are sticky.
 */
import {
  MAX_RECORD_BYTES,
  RECORD_HEADER_BYTES,
  RecordStreamDecoder,
  recordHeader,
  type RecordStreamEvent,
} from './record-framer.js';
import { ReasonCode } from './reason-codes.js';

/**
 * How records travel on the transport: 'stream' for a byte stream (TCP), each record behind its
 * u16 length; 'message' for a transport that keeps message boundaries (a data channel, a
 * WebSocket), one record per message.
 */
export type LinkFraming = 'stream' | 'message';

/** One link's framing, both directions. */
export interface LinkFramer {
  readonly framing: LinkFraming;
  /** Whether a record from `next()` is valid only until the following `next()` call. */
  readonly transientRecords: boolean;
  /** Queues bytes received from the transport (kept as views, not copied). */
  push(bytes: Uint8Array): void;
  /** The next record, `need-data`, or the (sticky) error that ends the link. */
  next(): RecordStreamEvent;
  /** The transport ended: the reason if it ended inside a record (`truncated`), else undefined. */
  end(): ReasonCode | undefined;
  /** Hands the wire form of one record, given as pieces, to `send`; returns its byte count. */
  frame(pieces: readonly Uint8Array[], send: (bytes: Uint8Array) => void): number;
}

/** The framer for `framing`. */
export function createLinkFramer(framing: LinkFraming): LinkFramer {
  return framing === 'stream' ? new StreamFramer() : new MessageFramer();
}

const NEED_DATA: RecordStreamEvent = Object.freeze({ kind: 'need-data' });

class StreamFramer implements LinkFramer {
  readonly framing = 'stream';
  readonly transientRecords = true;
  // Each record is opened before the next is asked for, so assembled records share one buffer.
  private readonly decoder = new RecordStreamDecoder({ reuseAssemblyBuffer: true });

  push(bytes: Uint8Array): void {
    this.decoder.push(bytes);
  }

  next(): RecordStreamEvent {
    return this.decoder.next();
  }

  end(): ReasonCode | undefined {
    return this.decoder.end();
  }

  frame(pieces: readonly Uint8Array[], send: (bytes: Uint8Array) => void): number {
    const length = totalLength(pieces);
    send(recordHeader(length));
    for (const piece of pieces) send(piece);
    return RECORD_HEADER_BYTES + length;
  }
}

class MessageFramer implements LinkFramer {
  readonly framing = 'message';
  readonly transientRecords = false;
  private readonly pending: Uint8Array[] = [];
  private error: RecordStreamEvent | undefined;

  push(bytes: Uint8Array): void {
    if (this.error === undefined) this.pending.push(bytes);
  }

  next(): RecordStreamEvent {
    if (this.error !== undefined) return this.error;
    const record = this.pending.shift();
    if (record === undefined) return NEED_DATA;
    if (record.length === 0) {
      return this.fail(ReasonCode.protocolError, 'an empty message (records are 1 or more bytes)');
    }
    if (record.length > MAX_RECORD_BYTES) {
      return this.fail(
        ReasonCode.frameTooLarge,
        `a ${record.length}-byte message exceeds the ${MAX_RECORD_BYTES}-byte record limit`,
      );
    }
    return { kind: 'record', record };
  }

  end(): ReasonCode | undefined {
    return this.error?.kind === 'error' ? this.error.reason : undefined;
  }

  frame(pieces: readonly Uint8Array[], send: (bytes: Uint8Array) => void): number {
    if (pieces.length === 1) {
      send(pieces[0]!);
      return pieces[0]!.length;
    }
    const record = new Uint8Array(totalLength(pieces));
    let at = 0;
    for (const piece of pieces) {
      record.set(piece, at);
      at += piece.length;
    }
    send(record);
    return record.length;
  }

  private fail(reason: ReasonCode, detail: string): RecordStreamEvent {
    this.pending.length = 0;
    this.error = { kind: 'error', reason, detail };
    return this.error;
  }
}

function totalLength(pieces: readonly Uint8Array[]): number {
  let length = 0;
  for (const piece of pieces) length += piece.length;
  return length;
}
