/**
 * The link port's two pieces of logic: the lane of each message type (link-lanes.ts, shared by
 * the Core's `send-message` input and the transfers' port) and the per-link DATA throughput
 * estimate of the peer snapshot (`ThroughputMeter`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sendOnLane, type LaneSink } from '../src/link-lanes.js';
import { THROUGHPUT_SAMPLE_MS, ThroughputMeter } from '../src/transfer/link-port.js';
import { TransferStatus, type WireMessage } from '../src/wire/messages.js';

/** Records which lane method each message reached. */
function recordingSink(): { sink: LaneSink; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    sink: {
      sendControl: (m) => calls.push(`control:${m.type}`),
      sendAfterData: (id, m) => calls.push(`after-data:${id}:${m.type}`),
      sendRpc: (m) => calls.push(`rpc:${m.type}`),
      queueStream: (id, bytes, offset) => calls.push(`data:${id}:${bytes.length}@${offset}`),
    },
  };
}

test('each message type travels in its lane', () => {
  const messages: Array<[WireMessage, string]> = [
    [{ type: 'data', requestId: 3, offset: 100, bytes: new Uint8Array(5) }, 'data:3:5@100'],
    [
      { type: 'status', requestId: 3, status: TransferStatus.ok, length: 5, message: '' },
      'after-data:3:status',
    ],
    [{ type: 'cancel', requestId: 3 }, 'control:cancel'],
    [
      { type: 'chunk-request', requestId: 5, chunkHash: new Uint8Array(32), priority: 0 },
      'control:chunk-request',
    ],
    [
      { type: 'chunk-announce', contentId: new Uint8Array(32), ranges: [] },
      'control:chunk-announce',
    ],
    [
      {
        type: 'fetch-assign',
        requestId: 7,
        url: 'https://o.example/x',
        rangeStart: 0,
        rangeEnd: 1,
        validator: '',
        headers: [],
      },
      'control:fetch-assign',
    ],
  ];
  for (const [message, expected] of messages) {
    const { sink, calls } = recordingSink();
    sendOnLane(sink, message);
    assert.deepEqual(calls, [expected]);
  }
});

test('RPC frames take the RPC lane', () => {
  const { sink, calls } = recordingSink();
  const lane = sendOnLane(sink, {
    type: 'rpc-request',
    callId: 1,
    method: 'm',
    body: new Uint8Array(0),
  });
  assert.equal(lane, 'rpc');
  assert.deepEqual(calls, ['rpc:rpc-request']);
});

test('throughput: bytes add up until a sample spans the sample time, then fold into an EWMA', () => {
  const meter = new ThroughputMeter();
  assert.equal(meter.bytesPerSecond(1), 0, 'unmeasured');
  meter.received(1, 10_000, 0);
  meter.received(1, 10_000, THROUGHPUT_SAMPLE_MS / 2);
  assert.equal(meter.bytesPerSecond(1), 0, 'no whole sample yet');
  meter.received(1, 5_000, THROUGHPUT_SAMPLE_MS);
  // 25 000 bytes over 250 ms.
  assert.equal(meter.bytesPerSecond(1), 100_000);
  meter.received(1, 50_000, 2 * THROUGHPUT_SAMPLE_MS);
  // EWMA, weight 1/4: (3 x 100 000 + 200 000) / 4.
  assert.equal(meter.bytesPerSecond(1), 125_000);
  assert.equal(meter.bytesPerSecond(2), 0, 'per link');
  meter.forget(1);
  assert.equal(meter.bytesPerSecond(1), 0);
});

test('property: a link at a steady rate is estimated at that rate', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000 }),
      fc.integer({ min: 1, max: 40 }),
      (bytesPerMs, samples) => {
        const meter = new ThroughputMeter();
        meter.received(9, 0, 0);
        for (let i = 1; i <= samples; i++)
          meter.received(9, bytesPerMs * THROUGHPUT_SAMPLE_MS, i * THROUGHPUT_SAMPLE_MS);
        assert.equal(meter.bytesPerSecond(9), bytesPerMs * 1000);
      },
    ),
  );
});
