/** CI batch, second half: random seeds 101-200 (see support-batch.ts). */
import { test } from 'node:test';
import { runBatch } from './support-batch.js';

test('random seeds 101-200 keep every invariant', () => runBatch(101, 200));
