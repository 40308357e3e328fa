/**
 * OutputFile on a real file system (issue 9 item 7): the sidecar's per-block SHA-256 digests
 * are written at each checkpoint and checked on resume; a part file or sidecar that fails any
 * check is discarded with one note, never trusted and never a crash; an existing target is
 * replaced only with `force` or by a resume.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { CHECKPOINT_BYTES, OutputFile, type OutputIdentity } from '../src/output-file.js';

const BLOCK = CHECKPOINT_BYTES;
const SIZE = 2 * BLOCK + 1000;
const identity: OutputIdentity = {
  url: 'http://origin.test/o.bin',
  validator: '"v1"',
  totalBytes: SIZE,
};
const bytes = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) bytes[i] = (i * 13 + 5) & 0xff;

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'peapod-output-file-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let serial = 0;
/** A part file that checkpointed `blocks` whole blocks (and some bytes past them), closed. */
async function checkpointed(blocks: number): Promise<string> {
  const path = join(root, `out-${serial++}.bin`);
  const file = await OutputFile.open(path, identity, { force: false });
  const length = blocks * BLOCK + 500;
  await file.write(0, bytes.subarray(0, length));
  await file.progress(length);
  await file.close();
  return path;
}

async function sidecarOf(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(`${path}.peapod-part.json`, 'utf8')) as Record<string, unknown>;
}

describe('OutputFile checkpoints and resume', () => {
  test('a checkpoint records one SHA-256 per block of what is on disk', async () => {
    const path = await checkpointed(2);
    const sidecar = await sidecarOf(path);
    assert.equal(sidecar['verifiedBytes'], 2 * BLOCK);
    assert.deepEqual(sidecar['blockSha256'], [
      createHash('sha256').update(bytes.subarray(0, BLOCK)).digest('hex'),
      createHash('sha256')
        .update(bytes.subarray(BLOCK, 2 * BLOCK))
        .digest('hex'),
    ]);
    const resumed = await OutputFile.open(path, identity, { force: false });
    assert.equal(resumed.resumeOffset, 2 * BLOCK);
    assert.equal(resumed.resumeNote, '');
    assert.equal((await stat(resumed.partPath)).size, 2 * BLOCK); // the unverified tail is cut
    await resumed.write(2 * BLOCK, bytes.subarray(2 * BLOCK));
    await resumed.commit();
    assert.ok((await readFile(path)).equals(bytes));
  });

  test('a resume hands its prefix to onPrefix once, in order, as the check reads it', async () => {
    const path = await checkpointed(2);
    const hash = createHash('sha256');
    let seen = 0;
    const resumed = await OutputFile.open(path, identity, { force: false }, (prefix) => {
      hash.update(prefix);
      seen += prefix.length;
    });
    assert.equal(resumed.resumeOffset, 2 * BLOCK);
    assert.equal(seen, 2 * BLOCK);
    assert.equal(
      hash.digest('hex'),
      createHash('sha256')
        .update(bytes.subarray(0, 2 * BLOCK))
        .digest('hex'),
    );
    await resumed.close();
  });

  test('a changed byte in a checkpointed block: discarded with one note, from zero', async () => {
    const path = await checkpointed(2);
    const part = await readFile(`${path}.peapod-part`);
    part[BLOCK + 7]! ^= 0x40;
    await writeFile(`${path}.peapod-part`, part);
    const file = await OutputFile.open(path, identity, { force: false });
    assert.equal(file.resumeOffset, 0);
    assert.equal(
      file.resumeNote,
      'not resuming the part file: block 2 of 2 no longer matches its checkpoint; starting over',
    );
    assert.equal((await stat(file.partPath)).size, 0);
    await assert.rejects(stat(`${path}.peapod-part.json`)); // the lying sidecar is gone
    await file.close();
  });

  test('a part file shorter than its record claims is discarded', async () => {
    const path = await checkpointed(1);
    await writeFile(`${path}.peapod-part`, bytes.subarray(0, BLOCK - 1));
    const file = await OutputFile.open(path, identity, { force: false });
    assert.equal(file.resumeOffset, 0);
    assert.match(file.resumeNote, /fewer than the \d+ its record claims; starting over$/);
    await file.close();
  });

  test('a repair below the checkpoint is hashed again before the next sidecar', async () => {
    const path = join(root, `repair-${serial++}.bin`);
    const file = await OutputFile.open(path, identity, { force: false });
    await file.write(0, Buffer.alloc(BLOCK, 0xee)); // a lying helper's bytes, checkpointed
    await file.progress(BLOCK);
    await file.write(0, bytes.subarray(0, BLOCK)); // repaired in place
    await file.write(BLOCK, bytes.subarray(BLOCK, 2 * BLOCK));
    await file.progress(2 * BLOCK);
    await file.close();
    const resumed = await OutputFile.open(path, identity, { force: false });
    assert.equal(resumed.resumeOffset, 2 * BLOCK, resumed.resumeNote);
    await resumed.close();
  });

  test('another identity (URL, validator, size, no validator) does not resume', async () => {
    const cases: Array<[Partial<OutputIdentity>, RegExp]> = [
      [{ url: 'http://origin.test/other' }, /for another URL/],
      [{ validator: '"v2"' }, /changed since/],
      [{ totalBytes: SIZE + 1 }, /size changed/],
      [{ validator: '' }, /no validator/],
    ];
    for (const [change, note] of cases) {
      const path = await checkpointed(1);
      const file = await OutputFile.open(path, { ...identity, ...change }, { force: false });
      assert.equal(file.resumeOffset, 0);
      assert.match(file.resumeNote, note);
      await file.close();
    }
  });

  test('an existing target: refused unless --force or a verified resume', async () => {
    const path = join(root, `existing-${serial++}.bin`);
    await writeFile(path, 'mine');
    await assert.rejects(OutputFile.preflight(path, { force: false }), {
      message: `${path} exists; use --force to replace it`,
    });
    await assert.rejects(OutputFile.open(path, identity, { force: false }), /exists; use --force/);
    assert.equal(await readFile(path, 'utf8'), 'mine');
    await OutputFile.preflight(path, { force: true });
    await (await OutputFile.open(path, identity, { force: true })).close();

    const resumable = await checkpointed(1);
    await writeFile(resumable, 'an older copy');
    await OutputFile.preflight(resumable, { force: false }); // a part file may resume it
    const file = await OutputFile.open(resumable, identity, { force: false });
    assert.equal(file.resumeOffset, BLOCK);
    await file.close();
    // The part file does not match this object: the existing file is not replaced.
    await assert.rejects(
      OutputFile.open(resumable, { ...identity, validator: '"v9"' }, { force: false }),
      /exists; use --force/,
    );
    assert.equal((await stat(`${resumable}.peapod-part`)).size, BLOCK); // and nothing destroyed
  });

  test('a part file planted as a symbolic link is never written through', async () => {
    const victim = join(root, `victim-${serial++}`);
    await writeFile(victim, 'precious');
    const path = join(root, `planted-${serial++}.bin`);
    await symlink(victim, `${path}.peapod-part`);
    await assert.rejects(
      OutputFile.open(path, identity, { force: false }),
      /\.peapod-part is a symbolic link, and PeaPod does not write through one/,
    );
    const sidecarVictim = join(root, `victim-${serial++}`);
    await writeFile(sidecarVictim, 'precious');
    const other = join(root, `planted-${serial++}.bin`);
    await symlink(sidecarVictim, `${other}.peapod-part.json.tmp`);
    const file = await OutputFile.open(other, identity, { force: false });
    await file.write(0, bytes.subarray(0, BLOCK));
    await assert.rejects(file.progress(BLOCK), /symbolic link/);
    await file.close();
    assert.equal(await readFile(victim, 'utf8'), 'precious');
    assert.equal(await readFile(sidecarVictim, 'utf8'), 'precious');
  });

  test('a directory or a device is refused with one sentence', async () => {
    await assert.rejects(OutputFile.preflight(root, { force: true }), /is a directory \(EISDIR\)/);
    await assert.rejects(OutputFile.preflight('/dev/null', { force: true }), /not a regular file/);
  });

  test('property: any sidecar text is a note or a verified resume, never an error', async () => {
    const path = await checkpointed(1);
    const valid = await sidecarOf(path);
    const text = fc.oneof(
      fc.string(),
      fc.json(),
      // Valid records with one field replaced by anything (sizes that lie, wrong types).
      fc
        .record({
          key: fc.constantFrom(...Object.keys(valid)),
          value: fc.oneof(fc.jsonValue(), fc.integer(), fc.constant(BLOCK * 3), fc.constant([])),
        })
        .map(({ key, value }) => JSON.stringify({ ...valid, [key]: value })),
    );
    await fc.assert(
      fc.asyncProperty(text, async (sidecar) => {
        await writeFile(`${path}.peapod-part`, bytes.subarray(0, BLOCK + 500));
        await writeFile(`${path}.peapod-part.json`, sidecar);
        const file = await OutputFile.open(path, identity, { force: false });
        try {
          if (file.resumeOffset > 0) {
            // Only a record that describes exactly what is on disk is trusted.
            assert.equal(file.resumeOffset, BLOCK);
            assert.equal(file.resumeNote, '');
          } else if (sidecar !== JSON.stringify(valid)) {
            assert.equal(file.resumeNote.includes('\n'), false);
          }
        } finally {
          await file.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});
