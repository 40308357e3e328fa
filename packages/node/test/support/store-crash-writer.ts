/**
 * The crash test's writer (store-crash.test.ts runs it as a child process and kills it with
 * SIGKILL): opens the store in argv[2] and writes the contents of `crashPlan(seed)` as fast as
 * it can, four puts in flight, removing and re-adding unpinned contents as it goes. Each line
 * on stdout is printed after the step it names completed (stdout to a pipe is synchronous on
 * Linux, so a line the parent read is a step that happened):
 *
 *   open <temporaryFilesRemoved> <orphanFilesRemoved> <rowsDropped>
 *   add <content>          addContent returned
 *   put <content> <index>  putChunk resolved
 *   removing <content>     remove is about to be called
 *   removed <content> <round>  remove resolved; the content is re-added at once, marked
 *                              with origin url `crash://re-added/<round>`
 *
 * The parent kills on a line it read, so the writer may be a few steps past it: a content the
 * last line says was removed may already be re-added. The marker tells a re-add (allowed)
 * from a removal the kill undid (a defect).
 *
 * It stops by itself after MAX_ROUNDS rounds, in case the parent never kills it.
 */
import { Prng } from '@peapod/core';
import { ChunkStore } from '../../src/store/chunk-store.js';
import { CRASH_PINNED_CHUNKS, crashPlan } from './store-fixtures.js';

const MAX_ROUNDS = 5_000;
const IN_FLIGHT = 4;

const [dir, seedText] = process.argv.slice(2);
if (dir === undefined || seedText === undefined)
  throw new Error('usage: store-crash-writer DIR SEED');
const seed = Number(seedText);
const plan = crashPlan(seed);
const prng = new Prng(seed);

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

const store = await ChunkStore.open({ dir, budgetBytes: plan.budgetBytes });
const { temporaryFilesRemoved, orphanFilesRemoved, rowsDropped } = store.recovery;
say(`open ${temporaryFilesRemoved} ${orphanFilesRemoved} ${rowsDropped}`);

const pinned = plan.contents[0]!;
store.addContent(pinned.manifest, { kind: 'shared', path: '/crash/pinned' }, { pinned: true });
say('add 0');
for (let c = 1; c < plan.contents.length; c++) {
  store.addContent(plan.contents[c]!.manifest, { kind: 'fetched' }, { pinned: false });
  say(`add ${c}`);
}

/** Puts the given chunks, IN_FLIGHT at a time. */
async function putAll(puts: Array<[number, number]>): Promise<void> {
  let next = 0;
  async function lane(): Promise<void> {
    while (next < puts.length) {
      const [c, index] = puts[next++]!;
      await store.putChunk(
        plan.contents[c]!.manifest.contentId,
        index,
        plan.contents[c]!.chunks[index]!,
      );
      say(`put ${c} ${index}`);
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
}

for (let round = 0; round < MAX_ROUNDS; round++) {
  const c = 1 + prng.nextInt(plan.contents.length - 1);
  const content = plan.contents[c]!;
  const puts: Array<[number, number]> = content.chunks.map((_, index) => [c, index]);
  // One pinned chunk per round, so the kill lands among pinned puts too.
  if (round < CRASH_PINNED_CHUNKS) puts.splice(prng.nextInt(puts.length + 1), 0, [0, round]);
  await putAll(puts);
  if (prng.nextInt(3) === 0) {
    say(`removing ${c}`);
    await store.remove(content.manifest.contentId);
    say(`removed ${c} ${round}`);
    const reAdded = { kind: 'url', url: `crash://re-added/${round}`, validator: 'crash' } as const;
    store.addContent(content.manifest, reAdded, { pinned: false });
    say(`add ${c}`);
  }
  // A read now and then moves chunks up the eviction order.
  await store.readChunk(content.manifest.contentId, prng.nextInt(content.chunks.length));
}
store.close();
