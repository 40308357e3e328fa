/**
 * The persisted gossip peer table (src/peer-store.ts) on real SQLite files in a temporary
 * directory: what it keeps across a reopen, what it refuses to keep (records that do not
 * verify, which includes any silent record with an address), its bound, and a damaged file
 * moved aside with a sentence instead of a crash.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import {
  buildPeerRecord,
  Capability,
  deriveDeviceId,
  toHex,
  type KeyPair,
  type PeerRecordFields,
} from '@peapod/core';
import { createNodeCryptoProvider } from '../src/node-crypto-provider.js';
import { PeerStore } from '../src/peer-store.js';

const crypto = createNodeCryptoProvider();
const root = await mkdtemp(join(tmpdir(), 'peapod-peer-store-'));
after(() => rm(root, { recursive: true, force: true }));
let count = 0;
const freshPath = () => join(root, `peers-${++count}.db`);

function device(): KeyPair {
  return crypto.ed25519GenerateKeyPair();
}

function record(identity: KeyPair, fields: Partial<PeerRecordFields> = {}): Uint8Array {
  const broadcast = fields.broadcast ?? true;
  return buildPeerRecord(crypto, identity, {
    issuedAtMs: Date.now(),
    broadcast,
    bootstrap: false,
    leaving: false,
    capabilities: Capability.serveChunks | Capability.gossip,
    listenPort: 9000,
    deviceName: 'far',
    addresses: broadcast ? ['203.0.113.7'] : [],
    ...fields,
  });
}

const hexOf = (identity: KeyPair) => toHex(deriveDeviceId(crypto, identity.publicKey));

describe('peers.db', () => {
  test('rows survive a reopen, in WAL mode, keyed by the Device ID the record names', async () => {
    const path = freshPath();
    const far = device();
    const quiet = device();
    const opened = await PeerStore.open(path, { crypto });
    assert.equal(opened.movedAside, undefined);
    assert.ok(opened.store.upsert(record(far), 'tracker', 1_000, 0.5));
    assert.ok(opened.store.upsert(record(quiet, { broadcast: false }), 'gossip', 2_000, 0.25));
    opened.store.heard(hexOf(far), 3_000, 0.75);
    opened.store.heard(hexOf(far), 500, 0.8); // an older time never goes back
    opened.store.close();
    const db = new Database(path);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    db.close();
    const again = (await PeerStore.open(path, { crypto })).store;
    const rows = again.rows();
    assert.deepEqual(
      rows.map((row) => [row.deviceIdHex, row.source, row.lastHeardAtMs, row.score]),
      [
        [hexOf(far), 'tracker', 3_000, 0.8],
        [hexOf(quiet), 'gossip', 2_000, 0.25],
      ],
    );
    again.remove(hexOf(far));
    assert.deepEqual(
      again.rows().map((row) => row.deviceIdHex),
      [hexOf(quiet)],
    );
    again.close();
  });

  test('a record that does not verify is not stored (a flipped byte, the broadcast flag cleared)', async () => {
    const { store } = await PeerStore.open(freshPath(), { crypto });
    const good = record(device());
    const flipped = Uint8Array.from(good);
    flipped[good.length - 1]! ^= 1;
    assert.equal(store.upsert(flipped, 'gossip', 1, 0), false);
    // Clearing broadcast on a record with an address breaks the rules and the signature both.
    const silentWithAddress = Uint8Array.from(good);
    silentWithAddress[1 + 32 + 8]! &= ~1;
    assert.equal(store.upsert(silentWithAddress, 'gossip', 1, 0), false);
    assert.deepEqual(store.rows(), []);
    store.close();
  });

  test('arbitrary and mutated bytes never throw and are never stored', async () => {
    const { store } = await PeerStore.open(freshPath(), { crypto });
    const base = record(device());
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 1200 }),
          fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 })).map(([at, xor]) => {
            const copy = Uint8Array.from(base);
            copy[at]! ^= xor;
            return copy;
          }),
        ),
        (bytes) => store.upsert(bytes, 'gossip', 1, 0) === false,
      ),
      { numRuns: 300 },
    );
    assert.deepEqual(store.rows(), []);
    store.close();
  });

  test('bounded: past rowsMax the rows heard from longest ago are dropped', async () => {
    const { store } = await PeerStore.open(freshPath(), { crypto, rowsMax: 5 });
    const devices = Array.from({ length: 8 }, device);
    devices.forEach((identity, i) => assert.ok(store.upsert(record(identity), 'gossip', i, 0)));
    assert.deepEqual(
      store.rows().map((row) => row.lastHeardAtMs),
      [7, 6, 5, 4, 3],
    );
    store.close();
  });

  test('a file that is not SQLite is moved aside with a sentence; the daemon gets an empty table', async () => {
    const path = freshPath();
    await writeFile(
      path,
      'this is not a database, just some text that a disk mangled\n'.repeat(100),
    );
    const { store, movedAside } = await PeerStore.open(path, { crypto });
    assert.match(
      movedAside ?? '',
      /^The gossip peer table .*peers-\d+\.db could not be read \(.*\); it was moved to .*\.broken-.* and this daemon starts with an empty table/,
    );
    assert.deepEqual(store.rows(), []);
    assert.ok(store.upsert(record(device()), 'gossip', 1, 0));
    store.close();
    const aside = (await readdir(root)).find((name) =>
      name.startsWith(`peers-${count}.db.broken-`),
    );
    assert.ok(aside !== undefined);
    assert.match(await readFile(join(root, aside), 'utf8'), /^this is not a database/);
  });

  test('a table of another schema version is moved aside too', async () => {
    const path = freshPath();
    const db = new Database(path);
    db.exec('CREATE TABLE peers (x); PRAGMA user_version = 9');
    db.close();
    const { store, movedAside } = await PeerStore.open(path, { crypto });
    assert.match(movedAside ?? '', /schema version 9, this PeaPod reads 1/);
    assert.deepEqual(store.rows(), []);
    store.close();
  });

  test('rows written behind its back that do not verify, or name another device, are dropped at open', async () => {
    const path = freshPath();
    const a = device();
    const b = device();
    const { store } = await PeerStore.open(path, { crypto });
    assert.ok(store.upsert(record(a), 'gossip', 5, 0));
    store.close();
    const db = new Database(path);
    // B's Device ID with A's record; a garbage record; a proper row stays.
    db.prepare('INSERT INTO peers VALUES (?, ?, ?, ?, ?)').run(
      hexOf(b),
      Buffer.from(record(a)),
      'gossip',
      6,
      0,
    );
    db.prepare('INSERT INTO peers VALUES (?, ?, ?, ?, ?)').run(
      'ab'.repeat(32),
      Buffer.from('junk'),
      'cache',
      7,
      0,
    );
    db.close();
    const again = (await PeerStore.open(path, { crypto })).store;
    assert.deepEqual(
      again.rows().map((row) => row.deviceIdHex),
      [hexOf(a)],
    );
    again.close();
  });
});
