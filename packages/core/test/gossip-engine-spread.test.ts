import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GossipMesh } from './support/gossip-mesh.js';

/** n engines that each know only node 0's record (as from a tracker) and dial from there. */
export function bootstrapMesh(
  n: number,
  seed: number,
  silent: (i: number) => boolean = () => false,
) {
  const mesh = new GossipMesh(seed);
  for (let i = 0; i < n; i++) mesh.add({ broadcast: i === 0 || !silent(i) });
  const seedRecord = mesh.nodes[0]!.engine.ownRecord(mesh.wall(0));
  for (let i = 1; i < n; i++) {
    mesh.nodes[i]!.engine.addRecords([seedRecord], 'tracker', mesh.nowMs, mesh.wall(i));
    mesh.drain(i);
    mesh.settle();
  }
  mesh.advance(120_000);
  return mesh;
}

test('an announcement reaches all 50 engines of a mesh bootstrapped from one record', () => {
  const mesh = bootstrapMesh(50, 1);
  const degrees = mesh.nodes.map((n) => n.engine.sizes.links);
  console.log('degrees', degrees.join(' '));
  const before = mesh.delivered;
  const result = mesh.nodes[17]!.engine.announce(mesh.nowMs, mesh.wall(17));
  assert.ok(result.sent);
  mesh.drain(17);
  mesh.settle();
  const reached = mesh.reached(result.messageIds[0]!);
  console.log('reached', reached.length, 'messages per node', (mesh.delivered - before) / 50);
  assert.equal(reached.length, 49);
});
