/**
 * The chunk server's refusal rules, driven directly through a fake engine context: upload slots
 * (at most `UPLOAD_SLOTS` links are sent chunks at once; the others get `busy`), turns (a link
 * past `TURN_BYTES` gives its slot up while others wait, and keeps it while nobody does), and
 * seeding (a chunk a seed sent to one peer is refused to the others as `notFound`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Capability, TransferStatus, type WireMessage } from '../src/wire/messages.js';
import { Availability } from '../src/transfer/availability.js';
import { ChunkServer, TURN_BYTES, UPLOAD_SLOTS } from '../src/transfer/chunk-server.js';
import type { TransferContext } from '../src/transfer/transfer-context.js';
import type { PeerLink } from '../src/peer-link.js';
import type { Manifest } from '../src/content/manifest.js';
import { deterministicCrypto } from './support/deterministic-crypto.js';
import { CHUNK, manifestOf, testBytes } from './support/content-fixture.js';

const crypto = deterministicCrypto(11);

/** A link that records what the server sends and holds queued streams until `drain()`. */
class FakeLink {
  readonly statuses: Array<{ requestId: number; status: TransferStatus }> = [];
  readonly queued = new Set<number>();
  sendAfterData(requestId: number, message: WireMessage): void {
    if (message.type === 'status') this.statuses.push({ requestId, status: message.status });
  }
  queueStream(requestId: number): void {
    this.queued.add(requestId);
  }
  isStreamQueued(requestId: number): boolean {
    return this.queued.has(requestId);
  }
  dropStream(requestId: number): { dropped: boolean; sentBytes: number } {
    return { dropped: this.queued.delete(requestId), sentBytes: 0 };
  }
  sendControl(): void {}
  /** Everything queued was sent. */
  drain(): void {
    this.queued.clear();
  }
  statusOf(requestId: number): TransferStatus | undefined {
    return this.statuses.find((s) => s.requestId === requestId)?.status;
  }
}

function setUp(linkCount: number, data: Uint8Array, chunkSizeBytes = CHUNK) {
  const links = new Map<number, FakeLink>();
  for (let id = 1; id <= linkCount; id++) links.set(id, new FakeLink());
  const reads: Array<{ readId: number; chunkIndex: number }> = [];
  const availability = new Availability();
  const ctx = {
    crypto,
    settings: { capabilities: Capability.serveChunks, servingPerLinkMax: 16 },
    availability,
    readyLink: (id: number) => links.get(id) as unknown as PeerLink | undefined,
    readyLinkIds: () => [...links.keys()],
    output: (o: { type: string; readId: number; chunkIndex: number }) => {
      if (o.type === 'read-chunk') reads.push({ readId: o.readId, chunkIndex: o.chunkIndex });
    },
  } as unknown as TransferContext;
  const server = new ChunkServer(ctx);
  const manifest = manifestOf(data, chunkSizeBytes);
  server.addChunks(manifest, undefined);
  let nextRequestId = 2;
  const request = (linkId: number, index: number, nowMs = 0): number => {
    const requestId = nextRequestId;
    nextRequestId += 2;
    server.onRequest(
      linkId,
      { type: 'chunk-request', requestId, chunkHash: manifest.chunkHashes[index]!, priority: 0 },
      nowMs,
    );
    return requestId;
  };
  /** Answers every pending read from `data` (the link then queues the DATA). */
  const answerReads = (): void => {
    for (const read of reads.splice(0)) {
      const start = read.chunkIndex * chunkSizeBytes;
      server.onChunkRead(read.readId, data.subarray(start, start + chunkSizeBytes));
    }
  };
  return { server, links, manifest: manifest as Manifest, availability, request, answerReads };
}

test('upload slots: chunks go to at most UPLOAD_SLOTS links at once; the next link gets busy', () => {
  const data = testBytes(64 * CHUNK, 3);
  const { links, request, answerReads } = setUp(UPLOAD_SLOTS + 2, data);
  // A seed would refuse a chunk it sent elsewhere, so each link asks for its own chunks.
  for (let link = 1; link <= UPLOAD_SLOTS; link++) {
    const id = request(link, link * 2);
    assert.equal(links.get(link)!.statusOf(id), undefined, `link ${link} is served`);
  }
  answerReads();
  const refused = request(UPLOAD_SLOTS + 1, 50);
  assert.equal(links.get(UPLOAD_SLOTS + 1)!.statusOf(refused), TransferStatus.busy);
  // A link that holds a slot may pipeline a second chunk.
  const second = request(1, 3);
  assert.equal(links.get(1)!.statusOf(second), undefined);
  // Once a link's streams are sent, its slot is free for the next link.
  links.get(2)!.drain();
  const next = request(UPLOAD_SLOTS + 2, 51);
  assert.equal(links.get(UPLOAD_SLOTS + 2)!.statusOf(next), undefined);
});

test('upload slots: manifest requests need no slot', () => {
  const data = testBytes(64 * CHUNK, 4);
  const { server, links, manifest, request, answerReads } = setUp(UPLOAD_SLOTS + 1, data);
  for (let link = 1; link <= UPLOAD_SLOTS; link++) request(link, link * 2);
  answerReads();
  const last = links.get(UPLOAD_SLOTS + 1)!;
  server.onRequest(
    UPLOAD_SLOTS + 1,
    { type: 'chunk-request', requestId: 1000, chunkHash: manifest.contentId, priority: 0 },
    0,
  );
  assert.equal(last.statusOf(1000), TransferStatus.ok);
  assert.ok(last.isStreamQueued(1000));
});

test('turns: past TURN_BYTES a link keeps its slot only while nobody waits for one', () => {
  // Chunks of 512 KiB: a turn is TURN_BYTES / 512 KiB chunks.
  const chunkSizeBytes = 512 * 1024;
  const perTurn = TURN_BYTES / chunkSizeBytes;
  const data = testBytes(32 * chunkSizeBytes, 5);
  const { links, request, answerReads } = setUp(UPLOAD_SLOTS + 1, data, chunkSizeBytes);
  for (let link = 2; link <= UPLOAD_SLOTS; link++) request(link, 20 + link);
  let index = 0;
  // Nobody waits: link 1 may go past its turn.
  for (let i = 0; i < perTurn + 2; i++) {
    const id = request(1, index++, 10);
    assert.equal(links.get(1)!.statusOf(id), undefined, `chunk ${i} of link 1 is served`);
  }
  answerReads();
  // Another link is refused (all slots taken): it now waits, so link 1's turn ends ...
  const waiter = UPLOAD_SLOTS + 1;
  assert.equal(links.get(waiter)!.statusOf(request(waiter, 30, 20)), TransferStatus.busy);
  const over = request(1, index++, 30);
  assert.equal(links.get(1)!.statusOf(over), TransferStatus.busy);
  // ... and once link 1's queue drains, the waiting link gets the slot.
  links.get(1)!.drain();
  const taken = request(waiter, 31, 40);
  assert.equal(links.get(waiter)!.statusOf(taken), undefined);
  // Link 1 starts a new turn only when a slot is free again.
  assert.equal(links.get(1)!.statusOf(request(1, index++, 50)), TransferStatus.busy);
});

test('turns: a link refused long ago no longer counts as waiting', () => {
  const chunkSizeBytes = 512 * 1024;
  const perTurn = TURN_BYTES / chunkSizeBytes;
  const data = testBytes(32 * chunkSizeBytes, 6);
  const { links, request, answerReads } = setUp(UPLOAD_SLOTS + 1, data, chunkSizeBytes);
  for (let link = 2; link <= UPLOAD_SLOTS; link++) request(link, 20 + link);
  for (let i = 0; i < perTurn; i++) request(1, i, 0);
  answerReads();
  const waiter = UPLOAD_SLOTS + 1;
  assert.equal(links.get(waiter)!.statusOf(request(waiter, 30, 0)), TransferStatus.busy);
  // Ten seconds later the refused link has not asked again: link 1 keeps going.
  const later = request(1, perTurn, 10_000);
  assert.equal(links.get(1)!.statusOf(later), undefined);
});

test('seeding: a chunk sent to one peer is refused to another as notFound, not busy', () => {
  const data = testBytes(8 * CHUNK, 7);
  const { links, request, availability, manifest } = setUp(2, data);
  request(1, 0, 0);
  const second = request(2, 0, 100);
  assert.equal(links.get(2)!.statusOf(second), TransferStatus.notFound);
  // Once the first peer announces it, the second is referred there once, then served.
  availability.announce(1, manifest.contentId, [{ start: 0, end: 1 }]);
  assert.equal(links.get(2)!.statusOf(request(2, 0, 200)), TransferStatus.notFound);
  assert.equal(links.get(2)!.statusOf(request(2, 0, 300)), undefined);
});
