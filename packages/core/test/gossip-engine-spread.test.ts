import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootstrapMesh } from './support/gossip-mesh.js';

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
