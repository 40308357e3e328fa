/**
 * Dialling through the cores' peer tables: discovery addresses round-trip (and never throw on
 * any string), every dial the network is asked for ends in exactly one of link-opened (with its
 * dial ID, on the dialler only) or dial-failed, and in a whole run each pair holds one link,
 * dialled by the device with the smaller Device ID.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prng } from '@peapod/core';
import { addressOf, nodeAt } from '../src/discovery.js';
import { EventQueue } from '../src/event-queue.js';
import { CONNECT_TIMEOUT_MS, Network, type NetworkEndpoint } from '../src/network.js';
import { randomScenario } from '../src/scenarios.js';
import { Simulation } from '../src/simulator.js';

test('addressOf and nodeAt round-trip; nodeAt never throws', () => {
  fc.assert(
    fc.property(fc.nat(1_000_000), (n) => {
      assert.equal(nodeAt(addressOf(n)), n);
    }),
  );
  fc.assert(
    fc.property(fc.string(), (text) => {
      const node = nodeAt(text);
      assert.ok(node === undefined || (Number.isSafeInteger(node) && node >= 0));
    }),
  );
});

/** Records what one endpoint is told, with the time. */
function recorder(queue: EventQueue, log: string[], name: string): NetworkEndpoint {
  return {
    onLinkOpened: (linkId, direction, _remote, dialId) =>
      log.push(`${queue.nowMs} ${name} opened ${linkId} ${direction} dial=${dialId}`),
    onDialFailed: (dialId, detail) => log.push(`${queue.nowMs} ${name} failed ${dialId} ${detail}`),
    onBytes: () => undefined,
    onFlushed: () => undefined,
    onLinkClosed: (linkId) => log.push(`${queue.nowMs} ${name} closed ${linkId}`),
  };
}

function world(): { queue: EventQueue; network: Network; log: string[] } {
  const queue = new EventQueue();
  const network = new Network(queue, new Prng(1));
  const log: string[] = [];
  const spec = { upBps: 1e9, downBps: 1e9, latencyMs: 5 };
  for (const name of ['a', 'b', 'c']) network.addNode(recorder(queue, log, name), spec, spec);
  return { queue, network, log };
}

test('a dial opens on both sides, with the dial ID on the dialler only', () => {
  const { queue, network, log } = world();
  network.connect(0, 1, 'lan', 7);
  while (queue.step());
  assert.deepEqual(log, ['10 b opened 1 inbound dial=undefined', '20 a opened 1 outbound dial=7']);
});

test('a dial to a dead process is refused after a round trip; to a vanished machine it times out', () => {
  const { queue, network, log } = world();
  network.crash(1, 'reset');
  network.crash(2, 'vanish');
  network.connect(0, 1, 'lan', 1);
  network.connect(0, 2, 'lan', 2);
  while (queue.step());
  assert.deepEqual(log, [
    '20 a failed 1 connection refused',
    `${CONNECT_TIMEOUT_MS} a failed 2 connect timed out`,
  ]);
});

test('a link broken before the dialler saw it open fails the dial once', () => {
  const { queue, network, log } = world();
  const link = network.connect(0, 1, 'lan', 3);
  queue.step(); // b sees the SYN
  network.breakLink(link);
  while (queue.step());
  assert.deepEqual(log, [
    '10 b opened 1 inbound dial=undefined',
    '10 a failed 3 connection reset',
    '10 b closed 1',
  ]);
});

test('in a run, every pair holds one link, dialled by the smaller Device ID', () => {
  // Link-level churn over a full mesh; the check is on the links that were ever opened.
  const simulation = new Simulation(randomScenario(3, { transfers: false }));
  const result = simulation.run();
  assert.equal(result.ok, true, result.violation?.detail);
  const links = simulation.network.links;
  assert.ok(links.length > 0);
  for (const link of links) {
    const dialler = simulation.hosts[link.a]!.deviceIdHex;
    const target = simulation.hosts[link.b]!.deviceIdHex;
    assert.ok(dialler < target, `link ${link.id}: ${link.a} dialled ${link.b}`);
    assert.notEqual(link.dialId, undefined);
  }
});
