/**
 * Record framing for byte streams (docs/protocol.md, "Record layer").
 *
 * Over a byte stream (TCP) every record (one Noise handshake or transport message, 1 to 65535
 * bytes) is preceded by its length as a u16 big-endian, as the Noise specification suggests for
 * stream transports (section 13, "Application responsibilities"). Message transports (WebRTC data channels, WebSockets) keep
 * boundaries themselves and carry one record per message, without this prefix.
 *
 * `frameRecord` adds the prefix. `RecordStreamDecoder` removes it, sans-I/O (h11's NEED_DATA
 * pattern): the host `push`es whatever bytes the socket produced, then calls `next()` until it
 * answers `need-data`. The decoder owns the partial-record buffer; the host owns the socket.
 *
 * Cost model, for 64 KiB records arriving in arbitrary TCP-sized pieces:
 * - `push` only queues a reference to the caller's buffer (no copy). The caller hands the
 *   buffer over and must not modify it afterwards.
 * - `next()` answers `need-data` in O(1) from a running byte count; it never rescans.
 * - A record that lies inside one pushed buffer is returned as a zero-copy view of it. A record
 *   spread over several buffers is copied once into a buffer of exactly its length (or, with
 *   `reuseAssemblyBuffer`, into one buffer the decoder reuses for every such record). Every byte
 *   is therefore copied at most once, whatever the piece sizes: no quadratic re-copying.
 * - The length is validated as soon as its 2 bytes are in, before any of the body is awaited:
 *   a zero length or one above `maxRecordBytes` is an error at once, and from then on the
 *   decoder holds nothing and discards whatever is pushed. Errors are sticky.
 * - Memory: if the host drains `next()` after every `push`, `bufferedBytes` never exceeds one
 *   record plus its header plus the bytes of the last push.
 */
import { PeapodError, invalidArgument } from '../errors.js';
import { ReasonCode } from './reason-codes.js';

/** Bytes of the record length prefix. */
export const RECORD_HEADER_BYTES = 2;

/** Largest record: the Noise maximum message length, which a u16 prefix can also express. */
export const MAX_RECORD_BYTES = 65_535;

/** What `RecordStreamDecoder.next()` reports. */
export type RecordStreamEvent =
  | { readonly kind: 'record'; readonly record: Uint8Array }
  | { readonly kind: 'need-data' }
  | { readonly kind: 'error'; readonly reason: ReasonCode; readonly detail: string };

/** Options of `RecordStreamDecoder`. */
export interface RecordStreamDecoderOptions {
  /** Largest record accepted, 1 to 65535; default MAX_RECORD_BYTES. */
  readonly maxRecordBytes?: number;
  /**
   * Assemble records that span several pushed buffers in one buffer the decoder reuses, instead
   * of a new one each time. Such a record is then valid only until the next `next()` call, so
   * only a caller that is done with each record before asking for the next may set this (a
   * peer link decrypts a transport record at once). Over TCP nearly every 64 KiB record spans
   * two socket reads (Node reads 64 KiB at a time), so this saves an allocation, its zero fill
   * and the garbage per record. Default false.
   */
  readonly reuseAssemblyBuffer?: boolean;
}

const NEED_DATA: RecordStreamEvent = Object.freeze({ kind: 'need-data' });
const EMPTY = new Uint8Array(0);
/** Compact the queue once this many consumed slots sit at its front. */
const QUEUE_COMPACT_SLOTS = 64;

/**
 * Prefixes one record with its u16 big-endian length, in one allocation.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `record` is not a Uint8Array, is empty,
 * or is longer than MAX_RECORD_BYTES (65535).
 * @example
 * frameRecord(new Uint8Array([0xaa, 0xbb])); // 0002aabb
 */
export function frameRecord(record: Uint8Array): Uint8Array {
  if (!(record instanceof Uint8Array)) invalidArgument('record', 'must be a Uint8Array');
  if (record.length === 0 || record.length > MAX_RECORD_BYTES) {
    invalidArgument('record', `must be 1 to ${MAX_RECORD_BYTES} bytes, got ${record.length}`);
  }
  const out = new Uint8Array(RECORD_HEADER_BYTES + record.length);
  out[0] = record.length >>> 8;
  out[1] = record.length & 0xff;
  out.set(record, RECORD_HEADER_BYTES);
  return out;
}

/**
 * Just the 2-byte length prefix of a record, for hosts that write prefix and record as two
 * buffers (one `writev`) instead of copying the record behind its prefix as `frameRecord` does.
 * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT unless 1 <= recordLength <= 65535.
 * @example
 * recordHeader(258); // 0102
 */
export function recordHeader(recordLength: number): Uint8Array {
  if (!Number.isInteger(recordLength) || recordLength < 1 || recordLength > MAX_RECORD_BYTES) {
    invalidArgument('recordLength', `must be 1 to ${MAX_RECORD_BYTES}, got ${recordLength}`);
  }
  return Uint8Array.of(recordLength >>> 8, recordLength & 0xff);
}

/**
 * Splits a byte stream back into records. See the module comment for the cost model.
 * @example
 * const decoder = new RecordStreamDecoder();
 * decoder.push(new Uint8Array([0x00, 0x02, 0xaa]));
 * decoder.next(); // { kind: 'need-data' }
 * decoder.push(new Uint8Array([0xbb]));
 * decoder.next(); // { kind: 'record', record: aabb }
 */
export class RecordStreamDecoder {
  /** Largest record this decoder accepts. */
  readonly maxRecordBytes: number;

  /** Pushed buffers not yet fully consumed; slots before #head are consumed. */
  #queue: Uint8Array[] = [];
  #head = 0;
  /** Bytes of #queue[#head] already consumed. */
  #headOffset = 0;
  /** Unconsumed bytes across the queue. */
  #buffered = 0;
  /** Length of the record whose header has been read; -1 while awaiting a header. */
  #recordLength = -1;
  #error: RecordStreamEvent | undefined;
  #ended = false;
  /** The reused assembly buffer (`reuseAssemblyBuffer`), grown to the largest record seen. */
  #assembly: Uint8Array | undefined;

  /**
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `maxRecordBytes` is not an integer in
   * [1, 65535].
   */
  constructor(options: RecordStreamDecoderOptions = {}) {
    const max = options.maxRecordBytes ?? MAX_RECORD_BYTES;
    if (!Number.isInteger(max) || max < 1 || max > MAX_RECORD_BYTES) {
      invalidArgument('options.maxRecordBytes', `must be an integer in [1, ${MAX_RECORD_BYTES}]`);
    }
    this.maxRecordBytes = max;
    if (options.reuseAssemblyBuffer === true) this.#assembly = EMPTY;
  }

  /**
   * Bytes received and not yet returned as a record, including the header of the record being
   * assembled. Zero after an error.
   */
  get bufferedBytes(): number {
    return this.#buffered + (this.#recordLength >= 0 ? RECORD_HEADER_BYTES : 0);
  }

  /**
   * Queues bytes received from the stream (no copy: the decoder keeps a reference, so the
   * caller must not modify `bytes` afterwards). Ignored after an error.
   * @throws PeapodError PEAPOD_ERR_INVALID_ARGUMENT when `bytes` is not a Uint8Array;
   * PEAPOD_ERR_INVALID_STATE after `end()`.
   */
  push(bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) invalidArgument('bytes', 'must be a Uint8Array');
    if (this.#ended) {
      throw new PeapodError('PEAPOD_ERR_INVALID_STATE', 'push() after end()');
    }
    if (this.#error !== undefined || bytes.length === 0) return;
    this.#queue.push(bytes);
    this.#buffered += bytes.length;
  }

  /**
   * The next complete record, `need-data` when more bytes are required, or the stream's error
   * (sticky: once an error is reported, every later call reports it again).
   * Errors: `protocolError` for a zero length, `frameTooLarge` for a length above
   * `maxRecordBytes`, `truncated` after `end()` in the middle of a record.
   */
  next(): RecordStreamEvent {
    if (this.#error !== undefined) return this.#error;
    if (this.#recordLength < 0) {
      if (this.#buffered < RECORD_HEADER_BYTES) return NEED_DATA;
      const length = (this.#takeByte() << 8) | this.#takeByte();
      if (length === 0) return this.#fail(ReasonCode.protocolError, 'record length 0');
      if (length > this.maxRecordBytes) {
        return this.#fail(
          ReasonCode.frameTooLarge,
          `record length ${length} exceeds the limit ${this.maxRecordBytes}`,
        );
      }
      this.#recordLength = length;
    }
    if (this.#buffered < this.#recordLength) return NEED_DATA;
    const record = this.#take(this.#recordLength);
    this.#recordLength = -1;
    return { kind: 'record', record };
  }

  /**
   * Declares the end of the stream. Call it after `next()` has answered `need-data`: bytes
   * still buffered then are an incomplete record. Returns `truncated` in that case, the
   * stream's earlier error reason if it had one, and `undefined` for a clean end.
   */
  end(): ReasonCode | undefined {
    this.#ended = true;
    if (this.#error === undefined && (this.#recordLength >= 0 || this.#buffered > 0)) {
      const detail =
        this.#recordLength >= 0
          ? `stream ended with ${this.#buffered} of ${this.#recordLength} record bytes`
          : `stream ended inside a record header`;
      this.#fail(ReasonCode.truncated, detail);
    }
    return this.#error?.kind === 'error' ? this.#error.reason : undefined;
  }

  #fail(reason: ReasonCode, detail: string): RecordStreamEvent {
    this.#error = { kind: 'error', reason, detail };
    this.#queue = [];
    this.#head = 0;
    this.#headOffset = 0;
    this.#buffered = 0;
    return this.#error;
  }

  /** Consumes one byte; the caller has checked #buffered. */
  #takeByte(): number {
    const front = this.#queue[this.#head]!;
    const byte = front[this.#headOffset]!;
    this.#advance(front, 1);
    return byte;
  }

  /** Consumes `count` bytes; the caller has checked #buffered. */
  #take(count: number): Uint8Array {
    const front = this.#queue[this.#head]!;
    const available = front.length - this.#headOffset;
    if (available >= count) {
      const view = front.subarray(this.#headOffset, this.#headOffset + count);
      this.#advance(front, count);
      return view;
    }
    let out: Uint8Array;
    if (this.#assembly === undefined) {
      out = new Uint8Array(count);
    } else {
      if (this.#assembly.length < count) this.#assembly = new Uint8Array(this.maxRecordBytes);
      out = this.#assembly.subarray(0, count);
    }
    let written = 0;
    while (written < count) {
      const piece = this.#queue[this.#head]!;
      const n = Math.min(piece.length - this.#headOffset, count - written);
      out.set(piece.subarray(this.#headOffset, this.#headOffset + n), written);
      written += n;
      this.#advance(piece, n);
    }
    return out;
  }

  /** Marks `count` bytes of the front buffer consumed, releasing it when done. */
  #advance(front: Uint8Array, count: number): void {
    this.#headOffset += count;
    this.#buffered -= count;
    if (this.#headOffset < front.length) return;
    this.#queue[this.#head] = EMPTY; // drop the reference so the buffer can be collected
    this.#head += 1;
    this.#headOffset = 0;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head >= QUEUE_COMPACT_SLOTS && this.#head * 2 >= this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }
}
