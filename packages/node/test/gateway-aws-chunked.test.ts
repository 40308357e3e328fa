/**
 * The aws-chunked decoder (gateway/aws-chunked.ts): bodies framed as AWS's SDKs frame them
 * (signed chunks, unsigned chunks with a trailer checksum), fed in arbitrary pieces, decode to
 * exactly the bytes; malformed framing, wrong lengths and wrong trailer checksums end the stream
 * with an error and never throw out of it. The SDK's real framing is exercised end to end in
 * gateway-endpoint.test.ts (PutObject with the default checksums through the gateway).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { AwsChunkedDecoder } from '../src/gateway/aws-chunked.js';

function frame(
  body: Buffer,
  sizes: readonly number[],
  options: { signed: boolean; trailer?: string },
): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (const size of [...sizes, body.length]) {
    const take = Math.min(size, body.length - at);
    if (take <= 0) continue;
    const sig = options.signed ? `;chunk-signature=${'a'.repeat(64)}` : '';
    parts.push(
      Buffer.from(`${take.toString(16)}${sig}\r\n`),
      body.subarray(at, at + take),
      Buffer.from('\r\n'),
    );
    at += take;
  }
  const sig = options.signed ? `;chunk-signature=${'b'.repeat(64)}` : '';
  parts.push(Buffer.from(`0${sig}\r\n`));
  if (options.trailer !== undefined) parts.push(Buffer.from(`${options.trailer}\r\n`));
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

async function decode(
  encoded: Buffer,
  declared: number,
  cuts: readonly number[] = [],
): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    if (cut > at && cut < encoded.length) {
      pieces.push(encoded.subarray(at, cut));
      at = cut;
    }
  }
  pieces.push(encoded.subarray(at));
  const out: Buffer[] = [];
  for await (const piece of Readable.from(pieces).pipe(new AwsChunkedDecoder(declared)))
    out.push(piece as Buffer);
  return Buffer.concat(out);
}

test('property: any body, chunking and piece boundaries decode to the same bytes (signed and trailer forms)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 5000 }),
      fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 6 }),
      fc.array(fc.nat(6000), { maxLength: 8 }),
      fc.boolean(),
      async (bytes, sizes, cuts, signed) => {
        const body = Buffer.from(bytes);
        const sha = createHash('sha256').update(body).digest('base64');
        const encoded = frame(body, sizes, {
          signed,
          ...(signed ? {} : { trailer: `x-amz-checksum-sha256:${sha}` }),
        });
        assert.deepEqual(await decode(encoded, body.length, cuts), body);
      },
    ),
    { numRuns: 300 },
  );
});

test('a trailer checksum that does not match the body is an error', async () => {
  const body = Buffer.from('hello world');
  const encoded = frame(body, [4], {
    signed: false,
    trailer: `x-amz-checksum-sha256:${createHash('sha256').update('other').digest('base64')}`,
  });
  await assert.rejects(decode(encoded, body.length), /does not match its x-amz-checksum-sha256/);
});

test('a CRC-32 trailer is checked (the SDK default): right passes, wrong fails', async () => {
  const body = Buffer.from('The quick brown fox jumps over the lazy dog');
  // CRC-32 of that sentence is 0x414fa339.
  const right = Buffer.from([0x41, 0x4f, 0xa3, 0x39]).toString('base64');
  assert.deepEqual(
    await decode(
      frame(body, [10], { signed: false, trailer: `x-amz-checksum-crc32:${right}` }),
      body.length,
    ),
    body,
  );
  await assert.rejects(
    decode(
      frame(body, [10], { signed: false, trailer: 'x-amz-checksum-crc32:AAAAAA==' }),
      body.length,
    ),
    /crc32/,
  );
});

test('lengths that disagree with x-amz-decoded-content-length are errors', async () => {
  const body = Buffer.from('0123456789');
  await assert.rejects(
    decode(frame(body, [3], { signed: true }), 9),
    /longer than x-amz-decoded-content-length/,
  );
  await assert.rejects(decode(frame(body, [3], { signed: true }), 11), /decoded 10 bytes/);
  await assert.rejects(
    decode(frame(body, [3], { signed: true }).subarray(0, 12), 10),
    /ended before its last chunk/,
  );
});

test('property: arbitrary bytes never throw out of the decoder (an error event at most)', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.nat(1000), async (bytes, declared) => {
      try {
        await decode(Buffer.from(bytes), declared);
      } catch (error) {
        assert.equal((error as Error).name, 'AwsChunkedError');
      }
    }),
    { numRuns: 500 },
  );
});
