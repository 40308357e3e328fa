/**
 * Frame reader: a bounded cursor over one received frame, the only code that touches untrusted
 * frame bytes directly.
 *
 * Every read checks the bytes remaining first; every length prefix is compared with its limit
 * and with the bytes remaining BEFORE anything is sliced, decoded or allocated, so a peer that
 * claims a 60 KiB string in a 10-byte frame costs nothing. A violation throws a
 * `FrameDecodeError`, which `decodeMessage` (codec.ts) catches and turns into a
 * `{ ok: false }` result: the exception never leaves the codec (STYLE.md section 5, kind 1).
 *
 * Byte strings come back either as zero-copy views of the frame (payloads that the caller
 * consumes at once: DATA bytes, RPC bodies) or as copies (small values a caller may keep for a
 * long time, such as a 32-byte hash, so that keeping them does not pin a 64 KiB record).
 *
 * Internal to the wire codec; not exported from the package.
 */
import { ReasonCode } from './reason-codes.js';

const TWO_POW_32 = 0x1_0000_0000;
/** The largest high half of a u64 that keeps the value <= Number.MAX_SAFE_INTEGER (2^53 - 1). */
const MAX_SAFE_HIGH_WORD = 0x1f_ffff;

/**
 * Strict UTF-8: malformed sequences, overlong forms and encoded surrogates are errors, and a
 * leading U+FEFF is kept as a character (`ignoreBOM: true`) so that every string round-trips
 * byte for byte. (bytes.ts's `utf8Decode` strips a leading BOM, which would break canonical
 * encoding, so the codec keeps its own decoder.)
 */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * A malformed frame. Thrown inside the codec only; `decodeMessage` turns it into data. Not an
 * `Error` subclass on purpose: it never escapes, so capturing a stack trace for every malformed
 * frame a hostile peer sends would be wasted work.
 */
export class FrameDecodeError {
  readonly reason: ReasonCode;
  readonly detail: string;

  constructor(reason: ReasonCode, detail: string) {
    this.reason = reason;
    this.detail = detail;
  }
}

/**
 * Ends decoding with a protocol error.
 * @throws FrameDecodeError always.
 */
export function malformed(detail: string): never {
  throw new FrameDecodeError(ReasonCode.protocolError, detail);
}

/** Sequential big-endian reader over one frame. Field names are used in error details. */
export class FrameReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset: number;

  constructor(bytes: Uint8Array, offset: number) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#offset = offset;
  }

  /** Bytes left after the cursor. */
  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  /** @throws FrameDecodeError when fewer than `count` bytes remain. */
  need(field: string, count: number): void {
    if (count > this.remaining) {
      malformed(`${field}: needs ${count} bytes but only ${this.remaining} remain`);
    }
  }

  u8(field: string): number {
    this.need(field, 1);
    const value = this.#view.getUint8(this.#offset);
    this.#offset += 1;
    return value;
  }

  u16(field: string): number {
    this.need(field, 2);
    const value = this.#view.getUint16(this.#offset);
    this.#offset += 2;
    return value;
  }

  u32(field: string): number {
    this.need(field, 4);
    const value = this.#view.getUint32(this.#offset);
    this.#offset += 4;
    return value;
  }

  /** @throws FrameDecodeError when the value exceeds Number.MAX_SAFE_INTEGER. */
  u64(field: string): number {
    this.need(field, 8);
    const high = this.#view.getUint32(this.#offset);
    const low = this.#view.getUint32(this.#offset + 4);
    if (high > MAX_SAFE_HIGH_WORD) malformed(`${field}: u64 value exceeds 2^53 - 1`);
    this.#offset += 8;
    return high * TWO_POW_32 + low;
  }

  /** Exactly `count` bytes, copied (see the module comment for when to copy). */
  copy(field: string, count: number): Uint8Array {
    this.need(field, count);
    const value = this.#bytes.slice(this.#offset, this.#offset + count);
    this.#offset += count;
    return value;
  }

  /** Every remaining byte, as a zero-copy view of the frame. */
  rest(): Uint8Array {
    const value = this.#bytes.subarray(this.#offset);
    this.#offset = this.#bytes.length;
    return value;
  }

  /**
   * A UTF-8 string with a u16 byte-length prefix.
   * @throws FrameDecodeError when the length is below `minBytes`, above `maxBytes` or above the
   * bytes remaining (all checked before decoding), or the bytes are not valid UTF-8.
   */
  string16(field: string, minBytes: number, maxBytes: number): string {
    const length = this.u16(`${field} length`);
    if (length < minBytes) malformed(`${field}: length ${length} is below the minimum ${minBytes}`);
    if (length > maxBytes) malformed(`${field}: length ${length} exceeds the limit ${maxBytes}`);
    this.need(field, length);
    const start = this.#offset;
    this.#offset += length;
    if (length === 0) return '';
    let text: string;
    try {
      text = strictUtf8.decode(this.#bytes.subarray(start, start + length));
    } catch {
      return malformed(`${field}: not valid UTF-8`);
    }
    return text;
  }

  /** @throws FrameDecodeError when bytes remain after the last field of a message. */
  end(type: string): void {
    if (this.remaining !== 0) {
      malformed(`${type}: ${this.remaining} trailing bytes after the last field`);
    }
  }
}
