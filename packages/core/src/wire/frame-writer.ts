/**
 * Frame writer: fills one pre-sized frame buffer, front to back, in network byte order.
 *
 * The codec validates a message and computes its exact encoded size first, then writes it here
 * with one allocation and no resizing. Every write is in bounds by construction; `finish()`
 * asserts that the computed size and the bytes written agree (a mismatch is a codec bug, so it
 * is an assertion, STYLE.md section 5 kind 3). Values reaching this writer are already
 * validated, so it does no range checks of its own.
 *
 * Internal to the wire codec; not exported from the package.
 */
import { assert } from '../errors.js';

const TWO_POW_32 = 0x1_0000_0000;

/** Sequential big-endian writer over a buffer of a known final size. */
export class FrameWriter {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  /** @param size the exact number of bytes the caller will write. */
  constructor(size: number) {
    this.#bytes = new Uint8Array(size);
    this.#view = new DataView(this.#bytes.buffer);
  }

  u8(value: number): void {
    this.#view.setUint8(this.#offset, value);
    this.#offset += 1;
  }

  u16(value: number): void {
    this.#view.setUint16(this.#offset, value);
    this.#offset += 2;
  }

  u32(value: number): void {
    this.#view.setUint32(this.#offset, value);
    this.#offset += 4;
  }

  /** A u64 as two big-endian u32 halves; `value` is a safe non-negative integer. */
  u64(value: number): void {
    this.#view.setUint32(this.#offset, Math.floor(value / TWO_POW_32));
    this.#view.setUint32(this.#offset + 4, value % TWO_POW_32);
    this.#offset += 8;
  }

  bytes(value: Uint8Array): void {
    this.#bytes.set(value, this.#offset);
    this.#offset += value.length;
  }

  /** A u16 length prefix followed by the bytes. */
  prefixed16(value: Uint8Array): void {
    this.u16(value.length);
    this.bytes(value);
  }

  /**
   * Returns the finished frame.
   * @throws PeapodError PEAPOD_ERR_ASSERTION when fewer or more bytes were written than sized.
   */
  finish(): Uint8Array {
    assert(
      this.#offset === this.#bytes.length,
      `frame sized ${this.#bytes.length} bytes but ${this.#offset} were written`,
    );
    return this.#bytes;
  }
}
