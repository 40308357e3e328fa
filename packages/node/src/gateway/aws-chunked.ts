/**
 * Decoding an `aws-chunked` request body (S3's streaming uploads), so the gateway can send an
 * upload on under its own signature.
 *
 * Theory of operation
 * - The body is a sequence of chunks `hex-size[;chunk-signature=sig]\r\n data \r\n`, ended by a
 *   zero-size chunk, then optional trailer fields (`x-amz-checksum-crc32:...\r\n`) and `\r\n`
 *   (AWS's "Signature Version 4 chunked upload" and its trailer variant). Chunk signatures
 *   chain from the client's seed signature, which was for the gateway: they are dropped, and the
 *   gateway signs the decoded body as `UNSIGNED-PAYLOAD`. Trailer fields are collected; the
 *   caller cannot send them upstream after the body (HTTP/1.1 trailers on a request are not read
 *   by S3), so a trailer checksum is checked here instead (`x-amz-checksum-sha256` and
 *   `x-amz-checksum-crc32` are the ones verified; others are dropped with the encoding).
 * - `AwsChunkedDecoder` is a Transform: bounded memory (a chunk header is at most
 *   HEADER_MAX bytes; data passes through as it arrives). Malformed framing, a size over
 *   `declaredLength`, a body that ends early or a trailer checksum that does not match ends the
 *   stream with an error (the upstream request is then aborted, and S3 stores nothing).
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

const HEADER_MAX = 4096;
const CRLF = Buffer.from('\r\n');

type State = 'header' | 'data' | 'data-crlf' | 'trailer' | 'done';

export class AwsChunkedError extends Error {
  override readonly name = 'AwsChunkedError';
}

export class AwsChunkedDecoder extends Transform {
  private state: State = 'header';
  private pending = Buffer.alloc(0);
  private remaining = 0;
  private decoded = 0;
  private readonly sha256 = createHash('sha256');
  private crc32 = 0xffffffff;
  readonly trailers = new Map<string, string>();

  /** @param declaredLength `x-amz-decoded-content-length`: the decoded body's exact size. */
  constructor(private readonly declaredLength: number) {
    super();
  }

  override _transform(piece: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.consume(piece);
      done();
    } catch (error) {
      done(error as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    if (this.state !== 'done') {
      done(new AwsChunkedError('the aws-chunked body ended before its last chunk'));
      return;
    }
    if (this.decoded !== this.declaredLength) {
      done(
        new AwsChunkedError(
          `decoded ${this.decoded} bytes, x-amz-decoded-content-length says ${this.declaredLength}`,
        ),
      );
      return;
    }
    const problem = this.checksumProblem();
    done(problem === undefined ? undefined : new AwsChunkedError(problem));
  }

  private consume(input: Buffer): void {
    let piece = this.pending.length === 0 ? input : Buffer.concat([this.pending, input]);
    this.pending = Buffer.alloc(0);
    while (piece.length > 0) {
      if (this.state === 'data') {
        const take = Math.min(this.remaining, piece.length);
        const data = piece.subarray(0, take);
        this.push(data);
        this.sha256.update(data);
        this.crc32 = crc32Update(this.crc32, data);
        this.decoded += take;
        this.remaining -= take;
        piece = piece.subarray(take);
        if (this.remaining === 0) this.state = 'data-crlf';
        continue;
      }
      if (this.state === 'done') {
        if (piece.length > 0)
          throw new AwsChunkedError('bytes after the end of the aws-chunked body');
        return;
      }
      const end = piece.indexOf(CRLF);
      if (end < 0) {
        if (piece.length > HEADER_MAX) throw new AwsChunkedError('an aws-chunked line is too long');
        this.pending = Buffer.from(piece);
        return;
      }
      const line = piece.subarray(0, end).toString('latin1');
      piece = piece.subarray(end + 2);
      if (this.state === 'data-crlf') {
        if (line !== '') throw new AwsChunkedError('a chunk is longer than its size says');
        this.state = 'header';
      } else if (this.state === 'header') {
        this.header(line);
      } else if (line === '') {
        this.state = 'done';
      } else {
        const colon = line.indexOf(':');
        if (colon <= 0) throw new AwsChunkedError(`a malformed trailer line: ${line.slice(0, 80)}`);
        this.trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
    }
  }

  private header(line: string): void {
    const size = /^([0-9a-fA-F]{1,12})(;.*)?$/.exec(line);
    if (size === null) throw new AwsChunkedError(`a malformed chunk header: ${line.slice(0, 80)}`);
    const length = parseInt(size[1]!, 16);
    if (this.decoded + length > this.declaredLength)
      throw new AwsChunkedError('the chunks are longer than x-amz-decoded-content-length');
    if (length === 0) {
      this.state = 'trailer';
      return;
    }
    this.remaining = length;
    this.state = 'data';
  }

  private checksumProblem(): string | undefined {
    const sha = this.trailers.get('x-amz-checksum-sha256');
    if (sha !== undefined && sha !== this.sha256.digest('base64'))
      return 'the upload does not match its x-amz-checksum-sha256 trailer';
    const crc = this.trailers.get('x-amz-checksum-crc32');
    if (crc !== undefined) {
      const bytes = Buffer.alloc(4);
      bytes.writeUInt32BE((this.crc32 ^ 0xffffffff) >>> 0);
      if (crc !== bytes.toString('base64'))
        return 'the upload does not match its x-amz-checksum-crc32 trailer';
    }
    return undefined;
  }
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE) over `data`, continuing from `state` (start at 0xffffffff; finish with ^ 0xffffffff). */
function crc32Update(state: number, data: Uint8Array): number {
  let c = state;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return c >>> 0;
}
