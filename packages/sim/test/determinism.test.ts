/**
 * Determinism: a run is a pure function of its seed. The same seed twice gives the same trace
 * hash (every event's time, kind, node and size, and every Core event); a different seed gives a
 * different one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pooledScenario, randomScenario } from '../src/scenarios.js';
import { Simulation } from '../src/simulator.js';

const MIB = 1024 * 1024;

test('link-level churn: the same seed replays to the same trace hash', () => {
  for (const seed of [3, 4]) {
    const one = new Simulation(randomScenario(seed, { transfers: false })).run();
    const two = new Simulation(randomScenario(seed, { transfers: false })).run();
    assert.equal(one.ok, true, one.violation?.detail);
    assert.equal(one.traceHash, two.traceHash);
    assert.equal(one.events, two.events);
    assert.equal(one.simMs, two.simMs);
  }
  const other = new Simulation(randomScenario(5, { transfers: false })).run();
  const three = new Simulation(randomScenario(3, { transfers: false })).run();
  assert.notEqual(other.traceHash, three.traceHash);
});

test('a pooled download replays to the same trace hash', () => {
  const config = pooledScenario(11, { sizeBytes: 8 * MIB });
  const one = new Simulation(config).run();
  const two = new Simulation(pooledScenario(11, { sizeBytes: 8 * MIB })).run();
  assert.equal(one.traceHash, two.traceHash);
  assert.equal(one.events, two.events);
});
