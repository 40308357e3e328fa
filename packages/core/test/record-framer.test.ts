/**
 * Unit tests of the stream record framer (src/wire/record-framer.ts): layout, zero-copy and
 * copy paths, errors from the header alone, sticky errors, end-of-stream, and the cost model
 * (a 64 KiB record in 1-byte pieces, many records in one piece). The randomized properties
 * live in wire-codec.test.ts, except those of the per-link framers (src/wire/link-framing.ts),
 * at the end of this file.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { createLinkFramer } from '../src/wire/link-framing.js';
import { toHex } from '../src/bytes.js';
import {
  MAX_RECORD_BYTES,
  RECORD_HEADER_BYTES,
  RecordStreamDecoder,
  frameRecord,
} from '../src/wire/record-framer.js';
import type { RecordStreamEvent } from '../src/wire/record-framer.js';
import { ReasonCode } from '../src/wire/reason-codes.js';

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function drain(decoder: RecordStreamDecoder): Uint8Array[] {
  const records: Uint8Array[] = [];
  for (;;) {
    const event = decoder.next();
    if (event.kind === 'need-data') return records;
    if (event.kind === 'error') assert.fail(`${event.reason}: ${event.detail}`);
    records.push(event.record);
  }
}

function expectError(event: RecordStreamEvent, reason: ReasonCode): void {
  assert.equal(event.kind, 'error');
  if (event.kind === 'error') assert.equal(event.reason, reason, event.detail);
}

describe('frameRecord', () => {
  test('prefixes the u16 big-endian length', () => {
    assert.equal(toHex(frameRecord(Uint8Array.of(0xaa, 0xbb))), '0002aabb');
    const max = frameRecord(new Uint8Array(MAX_RECORD_BYTES));
    assert.equal(max.length, MAX_RECORD_BYTES + RECORD_HEADER_BYTES);
    assert.equal(toHex(max.subarray(0, 2)), 'ffff');
    assert.equal(toHex(frameRecord(new Uint8Array(256)).subarray(0, 2)), '0100');
  });

  test('refuses empty, oversized and non-byte records', () => {
    const refused = (value: unknown): void =>
      assert.throws(() => frameRecord(value as Uint8Array), {
        code: 'PEAPOD_ERR_INVALID_ARGUMENT',
      });
    refused(new Uint8Array(0));
    refused(new Uint8Array(MAX_RECORD_BYTES + 1));
    refused([1, 2, 3]);
    refused('ab');
  });
});

describe('RecordStreamDecoder', () => {
  test('returns a zero-copy view when a whole record sits in one pushed buffer', () => {
    const decoder = new RecordStreamDecoder();
    const stream = new Uint8Array([0, 3, 1, 2, 3, 0, 1, 9]);
    decoder.push(stream);
    const records = drain(decoder);
    assert.equal(records.length, 2);
    assert.equal(records[0]!.buffer, stream.buffer);
    assert.equal(records[0]!.byteOffset, 2);
    assert.equal(toHex(records[0]!), '010203');
    assert.equal(records[1]!.buffer, stream.buffer);
    assert.equal(toHex(records[1]!), '09');
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('a record that arrives in its own buffer after its header is still zero-copy', () => {
    const decoder = new RecordStreamDecoder();
    decoder.push(Uint8Array.of(0, 4));
    assert.equal(decoder.next().kind, 'need-data');
    const body = Uint8Array.of(5, 6, 7, 8);
    decoder.push(body);
    const [record] = drain(decoder);
    assert.equal(record!.buffer, body.buffer);
  });

  test('copies a record spread over several buffers, once, in order', () => {
    const decoder = new RecordStreamDecoder();
    decoder.push(Uint8Array.of(0));
    decoder.push(Uint8Array.of(5, 1, 2));
    assert.equal(decoder.next().kind, 'need-data');
    assert.equal(decoder.bufferedBytes, 4);
    decoder.push(Uint8Array.of(3, 4, 5, 0));
    const [record] = drain(decoder);
    assert.equal(toHex(record!), '0102030405');
    assert.equal(decoder.bufferedBytes, 1, 'the next header byte stays buffered');
  });

  test('a 64 KiB record pushed one byte at a time, then another record', () => {
    const decoder = new RecordStreamDecoder();
    const record = new Uint8Array(MAX_RECORD_BYTES).map((_, i) => i % 251);
    const stream = frameRecord(record);
    for (let i = 0; i < stream.length; i++) {
      decoder.push(stream.subarray(i, i + 1));
      if (i < stream.length - 1) assert.equal(decoder.next().kind, 'need-data');
    }
    const event = decoder.next();
    assert.ok(event.kind === 'record');
    assert.deepStrictEqual(event.record, record);
    decoder.push(frameRecord(Uint8Array.of(42)));
    assert.deepStrictEqual(drain(decoder), [Uint8Array.of(42)]);
    assert.equal(decoder.end(), undefined);
  });

  test('1000 records in one push come out as views, in order', () => {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < 1000; i++) parts.push(frameRecord(Uint8Array.of(i & 0xff, i >> 8)));
    const stream = new Uint8Array(parts.length * 4);
    parts.forEach((part, i) => stream.set(part, i * 4));
    const decoder = new RecordStreamDecoder();
    decoder.push(stream);
    const records = drain(decoder);
    assert.equal(records.length, 1000);
    records.forEach((record, i) => {
      assert.equal(record.buffer, stream.buffer);
      assert.equal(record[0]! | (record[1]! << 8), i);
    });
  });

  test('reuseAssemblyBuffer: records spanning pushes share one buffer; views stay views', () => {
    const records = [3000, 70, 65_535, 1, 40_000].map((length, i) =>
      new Uint8Array(length).fill(i + 1),
    );
    const stream = concat(...records.map((record) => frameRecord(record)));
    const decoder = new RecordStreamDecoder({ reuseAssemblyBuffer: true });
    const assembledBuffers = new Set<ArrayBufferLike>();
    let index = 0;
    // Pushes of 1000 bytes: most records span several pushes; the 70- and 1-byte ones may not.
    for (let offset = 0; offset < stream.length; offset += 1000) {
      const piece = stream.slice(offset, offset + 1000);
      decoder.push(piece);
      for (let event = decoder.next(); event.kind === 'record'; event = decoder.next()) {
        // Checked before the next call: an assembled record is valid only until then.
        assert.deepStrictEqual(event.record, records[index]);
        if (event.record.buffer !== piece.buffer) assembledBuffers.add(event.record.buffer);
        index++;
      }
    }
    assert.equal(index, records.length);
    assert.equal(assembledBuffers.size, 1, 'every assembled record used the same buffer');
    assert.equal(decoder.end(), undefined);
  });

  test('a zero length is a protocol error as soon as the header is in', () => {
    const decoder = new RecordStreamDecoder();
    decoder.push(Uint8Array.of(0, 0, 1, 2, 3));
    expectError(decoder.next(), ReasonCode.protocolError);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('a length above maxRecordBytes is frameTooLarge before any body arrives', () => {
    const decoder = new RecordStreamDecoder({ maxRecordBytes: 1024 });
    decoder.push(Uint8Array.of(0x04));
    assert.equal(decoder.next().kind, 'need-data');
    decoder.push(Uint8Array.of(0x01));
    expectError(decoder.next(), ReasonCode.frameTooLarge);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('a length of exactly maxRecordBytes is accepted', () => {
    const decoder = new RecordStreamDecoder({ maxRecordBytes: 3 });
    decoder.push(Uint8Array.of(0, 3, 7, 8, 9));
    assert.deepStrictEqual(drain(decoder), [Uint8Array.of(7, 8, 9)]);
  });

  test('errors are sticky, and later pushes are discarded', () => {
    const decoder = new RecordStreamDecoder({ maxRecordBytes: 10 });
    decoder.push(Uint8Array.of(0, 2, 1, 1, 0, 11));
    const first = decoder.next();
    assert.equal(first.kind, 'record');
    const error = decoder.next();
    expectError(error, ReasonCode.frameTooLarge);
    decoder.push(frameRecord(Uint8Array.of(1)));
    assert.equal(decoder.bufferedBytes, 0);
    assert.deepStrictEqual(decoder.next(), error);
    assert.equal(decoder.end(), ReasonCode.frameTooLarge);
  });

  test('end(): clean, inside a header, inside a body', () => {
    const clean = new RecordStreamDecoder();
    clean.push(frameRecord(Uint8Array.of(1)));
    drain(clean);
    assert.equal(clean.end(), undefined);

    const none = new RecordStreamDecoder();
    assert.equal(none.end(), undefined);

    const inHeader = new RecordStreamDecoder();
    inHeader.push(Uint8Array.of(0));
    assert.equal(inHeader.next().kind, 'need-data');
    assert.equal(inHeader.end(), ReasonCode.truncated);
    expectError(inHeader.next(), ReasonCode.truncated);

    const inBody = new RecordStreamDecoder();
    inBody.push(Uint8Array.of(0, 5, 1, 2));
    assert.equal(inBody.next().kind, 'need-data');
    assert.equal(inBody.end(), ReasonCode.truncated);
  });

  test('push after end() is a caller error; empty pushes are harmless', () => {
    const decoder = new RecordStreamDecoder();
    decoder.push(new Uint8Array(0));
    assert.equal(decoder.next().kind, 'need-data');
    decoder.end();
    assert.throws(() => decoder.push(Uint8Array.of(1)), { code: 'PEAPOD_ERR_INVALID_STATE' });
    assert.throws(() => new RecordStreamDecoder().push('x' as unknown as Uint8Array), {
      code: 'PEAPOD_ERR_INVALID_ARGUMENT',
    });
  });

  test('maxRecordBytes must be an integer in [1, 65535]', () => {
    for (const bad of [0, -1, 65_536, 1.5, Number.NaN]) {
      assert.throws(() => new RecordStreamDecoder({ maxRecordBytes: bad }), {
        code: 'PEAPOD_ERR_INVALID_ARGUMENT',
      });
    }
    assert.equal(new RecordStreamDecoder().maxRecordBytes, MAX_RECORD_BYTES);
    assert.equal(new RecordStreamDecoder({ maxRecordBytes: 1 }).maxRecordBytes, 1);
  });

  test('64 MiB in 1460-byte pieces: bounded buffering, each record copied at most once', () => {
    // Records that straddle pieces are assembled by one copy into a buffer of exactly their
    // length; records inside one piece are views. Buffering never exceeds one record + header.
    const record = new Uint8Array(MAX_RECORD_BYTES).fill(0x5a);
    const framed = frameRecord(record);
    const count = 1024;
    const stream = new Uint8Array(framed.length * count);
    for (let i = 0; i < count; i++) stream.set(framed, i * framed.length);
    const decoder = new RecordStreamDecoder();
    let records = 0;
    let copiedBytes = 0;
    let maxBuffered = 0;
    for (let at = 0; at < stream.length; at += 1460) {
      decoder.push(stream.subarray(at, at + 1460));
      for (;;) {
        const event = decoder.next();
        if (event.kind !== 'record') break;
        records++;
        if (event.record.buffer !== stream.buffer) copiedBytes += event.record.length;
      }
      maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
    }
    assert.equal(records, count);
    assert.ok(copiedBytes <= count * MAX_RECORD_BYTES);
    assert.ok(maxBuffered <= MAX_RECORD_BYTES + RECORD_HEADER_BYTES);
  });
});

describe('link framers (wire/link-framing.ts)', () => {
  const records = fc.array(fc.uint8Array({ minLength: 1, maxLength: 2000 }), { maxLength: 6 });
  const pieceSplit = (record: Uint8Array, cuts: number[]): Uint8Array[] => {
    const at = [...new Set(cuts.map((cut) => cut % (record.length + 1)))].sort((x, y) => x - y);
    const pieces: Uint8Array[] = [];
    let from = 0;
    for (const to of [...at, record.length]) {
      pieces.push(record.subarray(from, to));
      from = to;
    }
    return pieces.filter((piece) => piece.length > 0);
  };

  test('property: a record framed in pieces comes back whole, over either framing', () => {
    fc.assert(
      fc.property(records, fc.array(fc.nat(), { maxLength: 3 }), fc.nat(), (list, cuts, chop) => {
        for (const framing of ['stream', 'message'] as const) {
          const sender = createLinkFramer(framing);
          const receiver = createLinkFramer(framing);
          const sent: Uint8Array[] = [];
          let counted = 0;
          for (const record of list) {
            const before = sent.length;
            counted += sender.frame(pieceSplit(record, cuts), (bytes) => sent.push(bytes));
            // Over messages every record leaves as exactly one buffer.
            if (framing === 'message') assert.equal(sent.length, before + 1);
          }
          assert.equal(
            counted,
            sent.reduce((sum, bytes) => sum + bytes.length, 0),
          );
          // A stream may be re-cut anywhere; messages arrive as they were sent.
          const wire = framing === 'stream' ? pieceSplit(concat(...sent), [chop]) : sent;
          const got: Uint8Array[] = [];
          for (const bytes of wire) {
            receiver.push(bytes);
            for (let next = receiver.next(); next.kind !== 'need-data'; next = receiver.next()) {
              assert.ok(next.kind === 'record', framing);
              got.push(next.record.slice());
            }
          }
          assert.deepEqual(got, list, framing);
          assert.equal(receiver.end(), undefined);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('property: arbitrary messages never throw; each is a record, or a sticky error with a reason', () => {
    const message = fc.oneof(
      { weight: 5, arbitrary: fc.uint8Array({ maxLength: 64 }) },
      {
        weight: 1,
        arbitrary: fc
          .integer({ min: MAX_RECORD_BYTES - 1, max: MAX_RECORD_BYTES + 1 })
          .map((size) => new Uint8Array(size)),
      },
    );
    fc.assert(
      fc.property(fc.array(message, { maxLength: 8 }), (messages) => {
        const framer = createLinkFramer('message');
        let failed: RecordStreamEvent | undefined;
        for (const bytes of messages) {
          framer.push(bytes);
          const next = framer.next();
          if (failed !== undefined) {
            assert.equal(next, failed, 'errors are sticky');
          } else if (bytes.length === 0 || bytes.length > MAX_RECORD_BYTES) {
            assert.ok(next.kind === 'error');
            assert.equal(
              next.reason,
              bytes.length === 0 ? ReasonCode.protocolError : ReasonCode.frameTooLarge,
            );
            failed = next;
          } else {
            assert.ok(next.kind === 'record');
            assert.equal(next.record, bytes, 'the message itself, not a copy');
            assert.equal(framer.next().kind, 'need-data');
          }
        }
        assert.equal(framer.end(), failed?.kind === 'error' ? failed.reason : undefined);
      }),
      { numRuns: 1_000 },
    );
  });
});
