/**
 * The upload queue's bookkeeping under random operation sequences (fast-check): every offered
 * job ends up in exactly one place (started, waiting, refused, displaced), no more than `slots`
 * jobs send at once, waiting bytes stay within the budget (one job may always wait), and a job
 * only starts while a slot is free.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UploadQueue, type UploadJob } from '../src/transfer/upload-queue.js';
import { Prng } from '../src/prng.js';

interface Job extends UploadJob {
  readonly id: number;
}

type Op =
  | { readonly kind: 'offer'; readonly linkId: number; readonly byteCount: number }
  | { readonly kind: 'finish'; readonly pick: number }
  | { readonly kind: 'next' }
  | { readonly kind: 'remove'; readonly pick: number }
  | { readonly kind: 'drop'; readonly linkId: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('offer' as const),
    linkId: fc.integer({ min: 1, max: 5 }),
    byteCount: fc.integer({ min: 1, max: 8 }),
  }),
  fc.record({ kind: fc.constant('finish' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('next' as const) }),
  fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('drop' as const), linkId: fc.integer({ min: 1, max: 5 }) }),
);

test('upload queue: jobs are accounted for exactly once, within slots and budget', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 16 }),
      fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 6, maxLength: 6 }),
      fc.array(opArb, { maxLength: 80 }),
      (slots, waitingBytesMax, ranks, ops) => {
        const finished = new Set<number>();
        const prng = new Prng(1);
        const queue = new UploadQueue<Job>(
          slots,
          waitingBytesMax,
          (job) => !finished.has(job.id),
          (job) => ranks[job.linkId]!,
          (n) => prng.nextInt(n),
        );
        const started = new Map<number, Job>();
        const waiting = new Map<number, Job>();
        let nextId = 1;
        const start = (job: Job): void => {
          assert.ok(waiting.delete(job.id) || !started.has(job.id));
          started.set(job.id, job);
        };
        const live = (): Job[] => [...started.values()].filter((job) => !finished.has(job.id));
        for (const op of ops) {
          switch (op.kind) {
            case 'offer': {
              const job = {
                id: nextId++,
                linkId: op.linkId,
                requestId: nextId,
                byteCount: op.byteCount,
              };
              const result = queue.offer(job);
              if (result.kind === 'start') {
                assert.ok(live().length < slots, 'started while every slot was taken');
                started.set(job.id, job);
              } else if (result.kind === 'wait') {
                waiting.set(job.id, job);
                for (const other of result.displaced) {
                  assert.ok(waiting.delete(other.id), 'displaced a job that was not waiting');
                }
              }
              break;
            }
            case 'finish': {
              const sending = live();
              if (sending.length > 0) finished.add(sending[op.pick % sending.length]!.id);
              break;
            }
            case 'next':
              for (const job of queue.next()) start(job);
              assert.ok(live().length <= slots, 'more jobs sending than slots');
              break;
            case 'remove': {
              const all = [...waiting.values(), ...live()];
              if (all.length === 0) break;
              const job = all[op.pick % all.length]!;
              assert.equal(queue.remove(job.linkId, job.requestId), waiting.delete(job.id));
              if (started.delete(job.id)) finished.add(job.id);
              break;
            }
            case 'drop':
              queue.dropLink(op.linkId);
              for (const [id, job] of waiting) if (job.linkId === op.linkId) waiting.delete(id);
              for (const [id, job] of started) if (job.linkId === op.linkId) finished.add(id);
              break;
          }
          assert.equal(queue.waitingCount, waiting.size);
          for (const job of waiting.values()) assert.ok(queue.isWaiting(job.linkId, job.requestId));
          const waitingBytes = [...waiting.values()].reduce((sum, job) => sum + job.byteCount, 0);
          assert.ok(waiting.size <= 1 || waitingBytes <= waitingBytesMax, 'waiting over budget');
        }
        // With every sending job finished, the waiting ones all start in turn.
        for (let guard = 0; waiting.size > 0 && guard < 1000; guard++) {
          for (const job of live()) finished.add(job.id);
          for (const job of queue.next()) start(job);
        }
        assert.equal(waiting.size, 0, 'a waiting job never started');
      },
    ),
    { numRuns: 2000 },
  );
});
