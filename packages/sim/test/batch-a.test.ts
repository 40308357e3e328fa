/** CI batch, first half: random seeds 1-100 (see support-batch.ts). */
import { test } from 'node:test';
import { runBatch } from './support-batch.js';

test('random seeds 1-100 keep every invariant', () => runBatch(1, 100));
